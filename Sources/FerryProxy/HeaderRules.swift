#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FerryH2
import FerryConfig

/// Which header fields cross the proxy. HTTP/2 forbids connection-specific fields on the wire
/// (RFC 9113 section 8.2.2) and nghttp2 already rejects messages that carry them; these rules
/// are the second line, and they leave every other field (including `-bin` metadata) untouched
/// and in order. A block with nothing to remove is passed on as it is, without a copy.
enum HeaderRules {
    /// `connection`, `keep-alive`, `proxy-connection`, `transfer-encoding` or `upgrade`: by
    /// length first, so most names are ruled out without looking at a byte.
    @inline(__always)
    static func isHopByHop(_ name: UnsafeRawBufferPointer) -> Bool {
        switch name.count {
        case 7: return matches(name, "upgrade")
        case 10: return matches(name, "connection") || matches(name, "keep-alive")
        case 16: return matches(name, "proxy-connection")
        case 17: return matches(name, "transfer-encoding")
        default: return false
        }
    }

    /// The header carrying a caller's verified identity to the upstream (`ferry-client-id`). Only
    /// the proxy sets it: a copy arriving from a caller is removed from every request.
    static let clientIdentity = "ferry-client-id"

    /// Removed from requests: the hop-by-hop fields and `ferry-client-id`.
    @inline(__always)
    static func isStrippedFromRequests(_ name: UnsafeRawBufferPointer) -> Bool {
        name.count == 15 ? matches(name, "ferry-client-id") : isHopByHop(name)
    }

    /// Same bytes as `literal` (whose length the caller checked).
    private static func matches(_ name: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        // The first byte rules out the common names of these lengths (`:method`, `:status`,
        // `:authority`, `user-agent`) without a call.
        name[0] == literal.utf8Start.pointee && memcmp(name.baseAddress!, literal.utf8Start, name.count) == 0
    }

    private static func stripped(_ headers: H2Headers) -> H2Headers {
        headers.containsName(where: isHopByHop) ? headers.removing(where: isHopByHop) : headers
    }

    static func forwardedRequest(_ headers: H2Headers) -> H2Headers {
        headers.containsName(where: isStrippedFromRequests) ? headers.removing(where: isStrippedFromRequests) : headers
    }
    static func forwardedResponse(_ headers: H2Headers) -> H2Headers { stripped(headers) }
    static func forwardedTrailers(_ headers: H2Headers) -> H2Headers { stripped(headers) }
}

/// Routes read the request headers they name straight from the HTTP/2 header block.
extension H2Headers: RequestHeaderLookup {}
