import CHiredis
public enum CachePlaceholder {}
