#if canImport(Glibc)
import Glibc
#endif

/// The process's own figures under Prometheus' standard names (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, ...), read from /proc at scrape time (Linux; elsewhere
/// nothing). No Foundation: the files are read with open/read.
package struct ProcessMetrics: Sendable, Equatable {
    package var cpuSeconds: Double
    package var residentBytes: Int
    package var virtualBytes: Int
    package var openFDs: Int
    package var maxFDs: Int
    /// Unix seconds.
    package var startTime: Double
    package var threads: Int

    /// The running process's figures, or nil where /proc cannot be read.
    package static func current() -> ProcessMetrics? {
        #if os(Linux)
        guard let stat = readFile("/proc/self/stat"), let bootStat = readFile("/proc/stat") else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let parsed = parseStat(stat), ticks > 0 else { return nil }
        let bootTime = bootStat.split(separator: "\n").first { $0.hasPrefix("btime ") }
            .flatMap { Double($0.dropFirst(6).trimmingPrefixSpaces) } ?? 0
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return ProcessMetrics(cpuSeconds: Double(parsed.utime + parsed.stime) / ticks, residentBytes: parsed.rssPages * page,
                              virtualBytes: parsed.vsize, openFDs: countFDs(), maxFDs: Int(clamping: limit.rlim_cur),
                              startTime: bootTime + Double(parsed.startTicks) / ticks, threads: parsed.threads)
        #else
        return nil
        #endif
    }

    struct Stat: Equatable {
        var utime: Int, stime: Int, threads: Int, startTicks: Int, vsize: Int, rssPages: Int
    }

    /// Fields of /proc/self/stat after the command name (which may hold spaces and parentheses:
    /// the fields start after the last ')'). Numbered as in proc(5): utime 14, stime 15,
    /// num_threads 20, starttime 22, vsize 23, rss 24.
    static func parseStat(_ text: String) -> Stat? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state).
        func field(_ n: Int) -> Int? { n - 3 < fields.count ? Int(fields[n - 3]) : nil }
        guard let utime = field(14), let stime = field(15), let threads = field(20), let start = field(22),
              let vsize = field(23), let rss = field(24) else { return nil }
        return Stat(utime: utime, stime: stime, threads: threads, startTicks: start, vsize: vsize, rssPages: rss)
    }

    #if os(Linux)
    private static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[..<n]
            if bytes.count > 1 << 20 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func countFDs() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { $0.first == UInt8(ascii: ".") }
            if !isDot { count += 1 }
        }
        return max(0, count - 1)      // the directory being read is itself an open fd
    }
    #endif

    /// The samples, in the exposition's text.
    func write(to w: inout PrometheusWriter, version: String) {
        w.family("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.")
        w.sample("process_cpu_seconds_total", [], cpuSeconds)
        w.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
        w.sample("process_resident_memory_bytes", [], residentBytes)
        w.family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.")
        w.sample("process_virtual_memory_bytes", [], virtualBytes)
        w.family("process_open_fds", "gauge", "Open file descriptors.")
        w.sample("process_open_fds", [], openFDs)
        w.family("process_max_fds", "gauge", "The limit of open file descriptors.")
        w.sample("process_max_fds", [], maxFDs)
        w.family("process_start_time_seconds", "gauge", "When the process started, in seconds since the Unix epoch.")
        w.sample("process_start_time_seconds", [], startTime)
        w.family("process_threads", "gauge", "Threads of the process.")
        w.sample("process_threads", [], threads)
    }
}

extension Substring {
    fileprivate var trimmingPrefixSpaces: Substring { drop { $0 == " " } }
}
