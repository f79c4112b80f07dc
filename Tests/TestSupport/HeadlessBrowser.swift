import Foundation

/// One headless Chromium page driven over the DevTools protocol (`chromium_cdp.py`, run by
/// Debian's python3 with python3-websockets): navigate, evaluate JavaScript in the page as it
/// lives on, take screenshots. Each call blocks its thread until Chromium answers.
public final class HeadlessBrowser: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffered = Data()

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// `acceptAnyCertificate`: for HTTPS pages signed by a test's own certificate authority.
    public init(acceptAnyCertificate: Bool = false) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("chromium_cdp.py").path
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [script] + (acceptAnyCertificate ? ["--insecure"] : [])
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// One command (see `chromium_cdp.py`); its JSON value.
    @discardableResult
    public func send(_ command: String) throws -> Any? {
        input.fileHandleForWriting.write(Data((command.replacingOccurrences(of: "\n", with: " ") + "\n").utf8))
        while !buffered.contains(0x0A) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw Failure(description: "the browser driver exited") }
            buffered += chunk
        }
        let newline = buffered.firstIndex(of: 0x0A)!
        let line = buffered[buffered.startIndex..<newline]
        buffered = Data(buffered[(newline + 1)...])
        guard let reply = try JSONSerialization.jsonObject(with: line) as? [String: Any] else {
            throw Failure(description: "unreadable reply \(String(decoding: line, as: UTF8.self))")
        }
        guard reply["ok"] as? Bool == true else { throw Failure(description: "\(command): \(reply["error"] ?? "failed")") }
        return reply["value"] is NSNull ? nil : reply["value"]
    }

    /// What a JavaScript expression (a string, or a promise of one) gives in the page.
    public func text(of expression: String) throws -> String {
        try send("eval \(expression)") as? String ?? ""
    }

    public func close() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}
