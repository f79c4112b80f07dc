import ArgumentParser
import Foundation
import Gateway
import Logging
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

@main
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "A read-replica-aware routing gateway and cache for HTTP APIs.",
        discussion: """
            Runs the gateway with a YAML configuration file (--config), or only checks one \
            (--check): a valid file exits 0; an invalid one prints file:line:column, the key \
            and what is wrong, and exits 1. See README.md for every configuration key.

            SIGTERM or SIGINT stops accepting connections, lets requests in flight finish for \
            up to timeouts.drain, and exits 0. SIGHUP reloads the configuration file: an \
            invalid one is logged and the running configuration stays.
            """,
        version: GatewayServer.version
    )

    @Option(name: .long, help: ArgumentHelp("Run with this configuration file.", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Only validate this configuration file, then exit.", valueName: "file"))
    var check: String?

    @Option(name: .long, help: ArgumentHelp("Event loops of the data path (overrides event_loops).", valueName: "n"))
    var eventLoops: Int?

    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Flag(name: .long, help: "Take the listening sockets over from the gateway running with the same upgrade_socket, then let it drain and exit (binary upgrade).")
    var upgrade = false

    @Option(name: .long, help: ArgumentHelp("Write this process's PID here once it serves (systemd PIDFile=).", valueName: "file"))
    var pidFile: String?

    func validate() throws {
        if (config == nil) == (check == nil) {
            throw ValidationError("give exactly one of --config FILE or --check FILE")
        }
        if Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        if let eventLoops, !(1...256).contains(eventLoops) {
            throw ValidationError("--event-loops must be 1...256")
        }
    }

    func run() async throws {
        if let path = check {
            do {
                let loaded = try ConfigLoader.load(path: path)
                for warning in loaded.warnings { printError("warning: \(warning.description)") }
                print("\(path): OK (pools: \(loaded.pools.count), servers: \(loaded.pools.reduce(0) { $0 + $1.servers.count }))")
            } catch {
                printError(error.description)
                throw ExitCode(1)
            }
            return
        }

        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            LogfmtLogHandler.make(label: label, level: level)
        }
        let logger = Logger(label: "gateway")
        let loaded: GatewayConfig
        do {
            loaded = try ConfigLoader.load(path: config!)
        } catch {
            printError(error.description)
            throw ExitCode(1)
        }
        for warning in loaded.warnings {
            logger.warning("configuration", metadata: ["warning": "\(warning.description)"])
        }
        var inherited: BinaryUpgrade.InheritedSockets?
        if upgrade {
            do {
                inherited = try BinaryUpgrade.takeOver(from: loaded.upgradeSocketPath)
                logger.notice("binary upgrade: took over the listening sockets", metadata: ["from_pid": "\(inherited!.oldPID)"])
            } catch {
                printError("--upgrade: \(error)")
                throw ExitCode(1)
            }
        }
        let server: GatewayServer
        do {
            server = try GatewayServer(config: loaded, logger: logger, accessLog: AccessLogOutputs.standardOutput, eventLoops: eventLoops,
                                       configPath: config!, inherited: inherited)
        } catch {
            printError("\(config!): \(error)")
            throw ExitCode(1)
        }
        let pidFile = self.pidFile
        let started = Task {
            // Once the listeners serve (after an upgrade: the old process let go), systemd may
            // follow the PID.
            while !Task.isCancelled, !server.isServing { try? await Task.sleep(for: .milliseconds(10)) }
            guard !Task.isCancelled else { return }
            if let pidFile { try? "\(getpid())\n".write(toFile: pidFile, atomically: true, encoding: .utf8) }
        }
        defer {
            started.cancel()
            if let pidFile, (try? String(contentsOfFile: pidFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "\(getpid())" {
                unlink(pidFile)
            }
        }
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: server, successTerminationBehavior: .gracefullyShutdownGroup)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        // SIGHUP reloads the configuration file (routes, pools, limits, certificates...).
        let path = config!
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let reloads = Task {
            for await _ in hangups { await server.reload(from: path) }
        }
        defer { reloads.cancel() }
        do {
            try await group.run()
        } catch {
            printError("\(config!): \(error)")
            logger.error("gateway failed", metadata: ["error": "\(error)"])
            LogfmtLogHandler.flushAll()
            throw ExitCode(1)
        }
        LogfmtLogHandler.flushAll()
    }

    private func printError(_ message: String) {
        var stderr = StandardError()
        print("gateway: \(message)", to: &stderr)
    }
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)
        _ = Glibc.write(2, &bytes, bytes.count)
    }
}
