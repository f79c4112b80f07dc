import CLibpq
import Cache
