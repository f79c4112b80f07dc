/// A request's decoded header block: each field's name and value as bytes, in the order sent,
/// in one flat array that the connection's decoder reuses block after block (no String or
/// allocation per field, as `HPACKHeaders` makes).
struct HTTP2HeaderFields {
    struct Field {
        var name: Range<Int>
        var value: Range<Int>
    }

    private(set) var bytes: [UInt8] = []
    private(set) var fields: [Field] = []

    init() {}

    /// Fields given as text (tests, and whoever has no block to decode).
    init(_ pairs: [(String, String)]) {
        for (name, value) in pairs { append(name: Array(name.utf8), value: Array(value.utf8)) }
    }

    var count: Int { fields.count }

    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        fields.removeAll(keepingCapacity: true)
    }

    mutating func append<Name: Collection<UInt8>, Value: Collection<UInt8>>(name: Name, value: Value) {
        let nameStart = bytes.count
        bytes.append(contentsOf: name)
        let valueStart = bytes.count
        bytes.append(contentsOf: value)
        fields.append(Field(name: nameStart..<valueStart, value: valueStart..<bytes.count))
    }

    // The decoder appends a field's bytes as it reads them, then closes the field.

    mutating func appendBytes(_ source: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: source)
    }

    mutating func appendHuffman(_ source: UnsafeRawBufferPointer) throws(HPACKHuffman.Invalid) {
        try HPACKHuffman.decode(source, into: &bytes)
    }

    var end: Int { bytes.count }

    /// The field whose name starts at `nameStart` and value at `valueStart`, up to the end.
    mutating func closeField(nameStart: Int, valueStart: Int) {
        fields.append(Field(name: nameStart..<valueStart, value: valueStart..<bytes.count))
    }

    /// The first value named `name` (tests and logs).
    func first(_ name: String) -> String? {
        let wanted = Array(name.utf8)
        guard let field = fields.first(where: { bytes[$0.name].elementsEqual(wanted) }) else { return nil }
        return String(decoding: bytes[field.value], as: UTF8.self)
    }

    func string(_ range: Range<Int>) -> String {
        String(decoding: bytes[range], as: UTF8.self)
    }
}
