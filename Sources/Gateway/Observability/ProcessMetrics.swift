import Foundation

/// The standard `process_*` metrics every Prometheus exporter gives (CPU seconds, resident
/// memory, open and maximum file descriptors, start time), read from `/proc/self` when
/// `/metrics` is scraped, so the usual CPU and memory alarms need no node exporter on the host.
/// `gateway_event_loops` beside them turns CPU seconds into a share of the cores in use.
enum ProcessMetrics {
    struct Sample: Equatable {
        var cpuSeconds: Double
        var residentBytes: Double
        var startTimeSeconds: Double
        var openFileDescriptors: Int
        var maxFileDescriptors: Int?
    }

    /// What `/proc/self` says now; nil where it cannot be read (not Linux).
    static func sample() -> Sample? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let uptime = try? String(contentsOfFile: "/proc/uptime", encoding: .utf8),
              let parsed = parse(stat: stat, uptime: uptime, now: Date().timeIntervalSince1970,
                                 ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))), pageSize: Double(sysconf(Int32(_SC_PAGESIZE))))
        else { return nil }
        var sample = parsed
        sample.openFileDescriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { sample.maxFileDescriptors = Int(limit.rlim_cur) }
        return sample
    }

    /// `/proc/self/stat` (fields after the command's closing parenthesis: utime and stime are
    /// the 12th and 13th, starttime the 20th, rss the 22nd) and `/proc/uptime`.
    static func parse(stat: String, uptime: String, now: Double, ticksPerSecond: Double, pageSize: Double) -> Sample? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 21, let utime = Double(fields[11]), let stime = Double(fields[12]),
              let started = Double(fields[19]), let pages = Double(fields[21]),
              let up = uptime.split(separator: " ").first.flatMap({ Double($0) }) else { return nil }
        return Sample(cpuSeconds: (utime + stime) / ticksPerSecond, residentBytes: pages * pageSize,
                      startTimeSeconds: (now - up + started / ticksPerSecond).rounded(), openFileDescriptors: 0, maxFileDescriptors: nil)
    }

    static func render(_ sample: Sample, eventLoops: Int) -> String {
        var text = """
            # TYPE process_cpu_seconds_total counter
            process_cpu_seconds_total \(sample.cpuSeconds)
            # TYPE process_resident_memory_bytes gauge
            process_resident_memory_bytes \(sample.residentBytes)
            # TYPE process_start_time_seconds gauge
            process_start_time_seconds \(sample.startTimeSeconds)
            # TYPE process_open_fds gauge
            process_open_fds \(sample.openFileDescriptors)

            """
        if let max = sample.maxFileDescriptors {
            text += "# TYPE process_max_fds gauge\nprocess_max_fds \(max)\n"
        }
        text += "# TYPE gateway_event_loops gauge\ngateway_event_loops \(eventLoops)\n"
        return text
    }
}
