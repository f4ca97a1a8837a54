/// Which workload identities a rule accepts. An identity is a certificate's SPIFFE ID
/// (`spiffe://trust-domain/ns/NS/sa/SA`, the URI SAN Istio and SPIRE issue) or, without one,
/// its first DNS SAN.
///
/// Written as:
/// - `spiffe://td/ns/shop/sa/web` or `web.shop.svc`: exactly that identity;
/// - `spiffe://td`: every identity of trust domain `td`;
/// - `spiffe://td/ns/payments/*`: every identity under that path (the `*` ends a segment);
/// - `*`: any verified identity.
public enum IdentityPattern: Sendable, Hashable, CustomStringConvertible {
    case exact(String)
    case trustDomain(String)
    /// The text before the `*` (ends with `/`).
    case prefix(String)
    case anyVerified

    public static func parse(_ text: String) -> Result<IdentityPattern, ConfigValueError> {
        if text == "*" { return .success(.anyVerified) }
        guard !text.isEmpty, !text.contains(where: { $0 == " " || $0 == "\t" }) else {
            return .fail("an identity is a SPIFFE ID (spiffe://trust-domain/path) or a DNS name, got \"\(text)\"")
        }
        let star = text.firstIndex(of: "*")
        if let star, star != text.index(before: text.endIndex) || !text.dropLast().hasSuffix("/") {
            return .fail("'*' may only end a pattern, after a '/' (spiffe://td/ns/payments/*), or stand alone; got \"\(text)\"")
        }
        guard text.hasPrefix("spiffe://") else {
            if star != nil { return .fail("a prefix pattern is a SPIFFE ID path (spiffe://td/ns/payments/*), got \"\(text)\"") }
            return .success(.exact(text.lowercased()))
        }
        let rest = text.dropFirst("spiffe://".count)
        let domain = rest.prefix { $0 != "/" }
        guard !domain.isEmpty, domain.allSatisfy({ $0.isLetter || $0.isNumber || "-._".contains($0) }) else {
            return .fail("a SPIFFE ID names its trust domain after spiffe:// (spiffe://example.org/ns/a/sa/b), got \"\(text)\"")
        }
        let lowered = "spiffe://" + domain.lowercased() + rest.dropFirst(domain.count)
        if rest.count == domain.count { return .success(.trustDomain(lowered)) }
        if star != nil { return .success(.prefix(String(lowered.dropLast()))) }
        return .success(.exact(lowered))
    }

    /// Whether `identity` (as read from a verified certificate) is accepted. The scheme and
    /// trust domain compare case-insensitively, as SPIFFE and DNS define them.
    public func matches(_ identity: String) -> Bool {
        switch self {
        case .anyVerified: return true
        case .exact(let wanted): return Self.normalized(identity) == wanted
        case .trustDomain(let domain):
            let id = Self.normalized(identity)
            return id == domain || id.hasPrefix(domain + "/")
        case .prefix(let prefix): return Self.normalized(identity).hasPrefix(prefix)
        }
    }

    /// The scheme and trust domain (or a whole DNS name) in lower case; a SPIFFE path as it is.
    static func normalized(_ identity: String) -> String {
        guard identity.lowercased().hasPrefix("spiffe://") else { return identity.lowercased() }
        let rest = identity.dropFirst("spiffe://".count)
        let domain = rest.prefix { $0 != "/" }
        return "spiffe://" + domain.lowercased() + rest.dropFirst(domain.count)
    }

    public var description: String {
        switch self {
        case .anyVerified: return "*"
        case .exact(let id): return id
        case .trustDomain(let domain): return domain
        case .prefix(let prefix): return prefix + "*"
        }
    }
}
