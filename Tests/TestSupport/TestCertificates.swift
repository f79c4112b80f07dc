import Foundation

/// Certificates made by the real `openssl` command line for TLS tests, in a temporary folder:
/// a CA, server certificates it signs (by subjectAltName), client certificates, a second CA
/// whose clients are strangers, and an expired certificate (`openssl ca` with explicit dates).
public final class TestCertificates: Sendable {
    public let directory: String

    /// The CA that signs the servers' and the first client's certificates.
    public var caFile: String { directory + "/ca.pem" }
    /// Another CA: its client certificate is refused by a listener trusting `caFile`.
    public var otherCAFile: String { directory + "/other-ca.pem" }

    public init() throws {
        directory = NSTemporaryDirectory() + "gateway-certs-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try makeCA("ca", subject: "/CN=Gateway Test CA")
        try makeCA("other-ca", subject: "/CN=Another Test CA")
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    public func certFile(_ name: String) -> String { directory + "/\(name).pem" }
    public func keyFile(_ name: String) -> String { directory + "/\(name).key" }

    /// A server certificate for `dnsNames` (its subjectAltName), signed by `ca`.
    @discardableResult
    public func makeServer(_ name: String, dnsNames: [String], ca: String = "ca") throws -> String {
        let san = dnsNames.map { "DNS:\($0)" }.joined(separator: ",")
        try sign(name, subject: "/CN=\(dnsNames.first ?? name)", ca: ca,
                 extensions: "subjectAltName=\(san)\nextendedKeyUsage=serverAuth\n")
        return certFile(name)
    }

    /// A client certificate (`CN=name`), signed by `ca`.
    @discardableResult
    public func makeClient(_ name: String, ca: String = "ca") throws -> String {
        try sign(name, subject: "/CN=\(name)", ca: ca, extensions: "extendedKeyUsage=clientAuth\n")
        return certFile(name)
    }

    /// A server certificate that expired on 2020-02-01.
    public func makeExpired(_ name: String, dnsName: String) throws {
        let dir = directory + "/ca-db"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/index.txt", contents: Data())
        try "1000\n".write(toFile: dir + "/serial", atomically: true, encoding: .utf8)
        let config = """
            [ca]
            default_ca = test
            [test]
            database = \(dir)/index.txt
            serial = \(dir)/serial
            new_certs_dir = \(dir)
            default_md = sha256
            policy = any
            copy_extensions = none
            x509_extensions = server
            [any]
            commonName = supplied
            [server]
            subjectAltName = DNS:\(dnsName)
            """
        try config.write(toFile: dir + "/ca.cnf", atomically: true, encoding: .utf8)
        try run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout \(keyFile(name)) -out \(dir)/\(name).csr -subj /CN=\(dnsName)")
        try run("openssl ca -batch -config \(dir)/ca.cnf -cert \(certFile("ca")) -keyfile \(keyFile("ca")) -in \(dir)/\(name).csr -out \(certFile(name)) -startdate 20200101000000Z -enddate 20200201000000Z -notext")
    }

    private func makeCA(_ name: String, subject: String) throws {
        try run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout \(keyFile(name)) -out \(certFile(name)) -days 30 -subj '\(subject)' -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign")
    }

    private func sign(_ name: String, subject: String, ca: String, extensions: String) throws {
        let ext = directory + "/\(name).ext"
        try extensions.write(toFile: ext, atomically: true, encoding: .utf8)
        try run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout \(keyFile(name)) -out \(directory)/\(name).csr -subj '\(subject)'")
        try run("openssl x509 -req -in \(directory)/\(name).csr -CA \(certFile(ca)) -CAkey \(keyFile(ca)) -set_serial \(Int.random(in: 1...Int(Int32.max))) -days 30 -extfile \(ext) -out \(certFile(name))")
    }

    private func run(_ command: String) throws {
        let result = try Shell.run(command)
        guard result.status == 0 else { throw TestClientError("\(command) failed: \(result.output)") }
    }
}

/// A command line run through /bin/sh, its output (stdout and stderr together) collected.
public enum Shell {
    public struct Result: Sendable {
        public var status: Int32
        public var output: String
    }

    /// Runs `command` with `input` on its standard input; blocks the calling thread until it
    /// exits or `timeout` passes (then it is killed).
    public static func run(_ command: String, input: String = "", timeout: Duration = .seconds(30)) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "timeout -s KILL \(Int(timeout.components.seconds) + 1) sh -c \"$0\"", command]
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stdout
        try startSerially(process)
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try? stdin.fileHandleForWriting.close()
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }
}
