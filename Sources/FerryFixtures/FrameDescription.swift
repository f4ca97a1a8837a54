/// Human-readable lines for `ferry fixture show`: one line per frame, then its decoded headers.
public enum FrameDescription {
    static let errorNames = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
                             "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
                             "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
    static let settingNames = [1: "HEADER_TABLE_SIZE", 2: "ENABLE_PUSH", 3: "MAX_CONCURRENT_STREAMS",
                               4: "INITIAL_WINDOW_SIZE", 5: "MAX_FRAME_SIZE", 6: "MAX_HEADER_LIST_SIZE",
                               8: "ENABLE_CONNECT_PROTOCOL", 9: "NO_RFC7540_PRIORITIES"]

    public static func lines(_ decoded: DecodedFrame) -> [String] {
        let f = decoded.frame
        let arrow = decoded.direction == .clientToServer ? "C->S" : "S->C"
        var line = "\(timestamp(decoded.seconds)) \(arrow) \(FrameType.name(f.type)) stream=\(f.streamID) length=\(f.payload.count)"
        let flags = flagNames(f)
        if !flags.isEmpty { line += " flags=\(flags.joined(separator: "|"))" }
        line += details(f)
        var out = [line]
        for (name, value) in decoded.headers ?? [] {
            out.append("    \(name): \(printable(value))")
        }
        return out
    }

    static func timestamp(_ seconds: Double) -> String {
        let ms = seconds * 1000
        let text = String(Int(ms.rounded(.down))) + "." + String(Int((ms - ms.rounded(.down)) * 1000)).leftPadded(3, with: "0")
        return "+" + text.leftPadded(10) + "ms"
    }

    static func flagNames(_ f: RawFrame) -> [String] {
        var names: [String] = []
        switch f.type {
        case FrameType.data:
            if f.flags & 0x1 != 0 { names.append("END_STREAM") }
            if f.flags & 0x8 != 0 { names.append("PADDED") }
        case FrameType.headers:
            if f.flags & 0x1 != 0 { names.append("END_STREAM") }
            if f.flags & 0x4 != 0 { names.append("END_HEADERS") }
            if f.flags & 0x8 != 0 { names.append("PADDED") }
            if f.flags & 0x20 != 0 { names.append("PRIORITY") }
        case FrameType.settings, FrameType.ping:
            if f.flags & 0x1 != 0 { names.append("ACK") }
        case FrameType.pushPromise, FrameType.continuation:
            if f.flags & 0x4 != 0 { names.append("END_HEADERS") }
        default:
            break
        }
        return names
    }

    static func u32(_ p: [UInt8], _ at: Int) -> UInt32 {
        guard p.count >= at + 4 else { return 0 }
        return UInt32(p[at]) << 24 | UInt32(p[at + 1]) << 16 | UInt32(p[at + 2]) << 8 | UInt32(p[at + 3])
    }

    static func errorName(_ code: UInt32) -> String {
        code < errorNames.count ? errorNames[Int(code)] : "0x\(String(code, radix: 16))"
    }

    static func details(_ f: RawFrame) -> String {
        let p = f.payload
        switch f.type {
        case FrameType.data:
            let pad = f.flags & 0x8 != 0 ? Int(p.first ?? 0) + 1 : 0
            return " data=\(max(0, p.count - pad))" + (pad > 0 ? " padding=\(pad - 1)" : "")
        case FrameType.rstStream:
            return " error=\(errorName(u32(p, 0)))"
        case FrameType.settings:
            var entries: [String] = []
            var i = 0
            while i + 6 <= p.count {
                let id = Int(p[i]) << 8 | Int(p[i + 1])
                entries.append("\(settingNames[id] ?? "0x\(String(id, radix: 16))")=\(u32(p, i + 2))")
                i += 6
            }
            return entries.isEmpty ? "" : " " + entries.joined(separator: " ")
        case FrameType.ping:
            return " opaque=\(hex(p[...]))"
        case FrameType.goAway:
            let debug = p.count > 8 ? " debug=\"\(printable(String(decoding: p[8...], as: UTF8.self)))\"" : ""
            return " last_stream=\(u32(p, 0) & 0x7fff_ffff) error=\(errorName(u32(p, 4)))\(debug)"
        case FrameType.windowUpdate:
            return " increment=\(u32(p, 0) & 0x7fff_ffff)"
        case FrameType.priority:
            return " depends_on=\(u32(p, 0) & 0x7fff_ffff) weight=\(p.count > 4 ? Int(p[4]) + 1 : 0)"
        case FrameType.pushPromise:
            return " promised_stream=\(u32(p, f.flags & 0x8 != 0 ? 1 : 0) & 0x7fff_ffff)"
        default:
            return ""
        }
    }

    /// Control characters shown escaped so a header value cannot break the listing.
    static func printable(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "\n": out += "\\n"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f: out += "\\x" + String(scalar.value, radix: 16).leftPadded(2, with: "0")
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

extension String {
    func leftPadded(_ width: Int, with pad: Character = " ") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
