import FerryH2

/// Which header fields cross the proxy. HTTP/2 forbids connection-specific fields on the wire
/// (RFC 9113 section 8.2.2) and nghttp2 already rejects messages that carry them; these rules
/// are the second line, and they leave every other field (including `-bin` metadata) untouched
/// and in order. A block with nothing to remove is passed on as it is, without a copy.
enum HeaderRules {
    private static let hopByHop: [[UInt8]] = ["connection", "keep-alive", "proxy-connection",
                                               "transfer-encoding", "upgrade"].map { Array($0.utf8) }

    static func isHopByHop(_ name: UnsafeRawBufferPointer) -> Bool {
        for candidate in hopByHop where candidate.count == name.count {
            if candidate.withUnsafeBytes({ $0.elementsEqual(name) }) { return true }
        }
        return false
    }

    private static func stripped(_ headers: H2Headers) -> H2Headers {
        var found = false
        headers.forEachRaw { name, _, _ in if !found && isHopByHop(name) { found = true } }
        return found ? headers.removing(where: isHopByHop) : headers
    }

    static func forwardedRequest(_ headers: H2Headers) -> H2Headers { stripped(headers) }
    static func forwardedResponse(_ headers: H2Headers) -> H2Headers { stripped(headers) }
    static func forwardedTrailers(_ headers: H2Headers) -> H2Headers { stripped(headers) }
}
