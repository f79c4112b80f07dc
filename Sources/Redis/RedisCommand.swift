import CHiredis
import NIOCore

/// A command in RESP form, formatted by hiredis's `redisFormatCommandArgv` (binary-safe: each
/// argument goes with its length).
public struct RedisCommand: Sendable {
    public let encoded: ByteBuffer
    /// The command's name, for errors and metrics.
    public let name: String
    /// The cluster slot of the command's key (nil: no key; any node answers).
    public let slot: Int?

    /// - Parameter keyIndex: which argument is the key (Redis Cluster sends the command to
    ///   the master of its slot).
    public init(_ arguments: [RedisArgument], keyIndex: Int? = nil) {
        precondition(!arguments.isEmpty, "a command needs a name")
        if case .string(let name) = arguments[0] { self.name = name } else { self.name = "?" }
        slot = keyIndex.map { index in
            switch arguments[index] {
            case .string(let text): RedisSlot.of(text)
            case .bytes(let buffer): RedisSlot.of(buffer.readableBytesView)
            }
        }
        // One contiguous copy of every argument; argv points into it.
        var storage = [UInt8]()
        storage.reserveCapacity(arguments.reduce(0) { $0 + $1.byteCount })
        var lengths: [Int] = []
        lengths.reserveCapacity(arguments.count)
        for argument in arguments {
            switch argument {
            case .string(let text): storage.append(contentsOf: text.utf8)
            case .bytes(let buffer): storage.append(contentsOf: buffer.readableBytesView)
            }
            lengths.append(argument.byteCount)
        }
        var formatted: UnsafeMutablePointer<CChar>?
        let count = storage.withUnsafeBufferPointer { bytes -> Int32 in
            let base = UnsafeRawPointer(bytes.baseAddress ?? UnsafePointer(bitPattern: 1)!)
            var argv: [UnsafePointer<CChar>?] = []
            argv.reserveCapacity(lengths.count)
            var offset = 0
            for length in lengths {
                argv.append((base + offset).assumingMemoryBound(to: CChar.self))
                offset += length
            }
            return lengths.withUnsafeBufferPointer { lengths in
                argv.withUnsafeMutableBufferPointer { argv in
                    redisFormatCommandArgv(&formatted, Int32(argv.count), argv.baseAddress, lengths.baseAddress)
                }
            }
        }
        guard count >= 0, let formatted else { fatalError("hiredis: redisFormatCommandArgv failed (out of memory)") }
        defer { redisFreeCommand(formatted) }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(Int(count))
        buffer.writeBytes(UnsafeRawBufferPointer(start: formatted, count: Int(count)))
        encoded = buffer
    }

    public init(_ arguments: RedisArgument...) {
        self.init(arguments)
    }

    /// A command on one key, its second argument (`GET key`, `HGET key field`, ...).
    public init(key command: String, _ key: RedisArgument, _ rest: RedisArgument...) {
        self.init([.string(command), key] + rest, keyIndex: 1)
    }
}
