import NIOSSL

/// A workload's identity as its certificate states it: the SPIFFE ID in a URI SAN
/// (`spiffe://trust-domain/ns/NS/sa/SA`, as Istio and SPIRE issue them), or else the first DNS
/// SAN. Read only from certificates the handshake verified.
public enum WorkloadIdentity {
    public static func of(_ certificate: NIOSSLCertificate) -> String? {
        var dnsName: String?
        // swift-nio-ssl's SAN reader (underscored, public; BoringSSL's X509_get_ext_d2i).
        for name in certificate._subjectAlternativeNames() {
            switch name.nameType {
            case .uri:
                let uri = String(decoding: name.contents, as: UTF8.self)
                if uri.lowercased().hasPrefix("spiffe://") { return uri }
            case .dnsName:
                if dnsName == nil { dnsName = String(decoding: name.contents, as: UTF8.self) }
            default:
                break
            }
        }
        return dnsName
    }

    /// The certificate's DNS SANs.
    public static func dnsNames(_ certificate: NIOSSLCertificate) -> [String] {
        certificate._subjectAlternativeNames().compactMap { name in
            name.nameType == .dnsName ? String(decoding: name.contents, as: UTF8.self) : nil
        }
    }

    /// Whether one of the certificate's DNS SANs is `name` (ASCII case-insensitive, a trailing
    /// dot ignored, a `*.` wildcard covering exactly one leftmost label, as RFC 6125 has it).
    public static func hasDNSName(_ name: String, _ certificate: NIOSSLCertificate) -> Bool {
        let wanted = normalized(name)
        return dnsNames(certificate).contains { candidate in
            let san = normalized(candidate)
            if san.hasPrefix("*.") {
                guard let dot = wanted.firstIndex(of: "."), wanted.startIndex != dot else { return false }
                return wanted[dot...] == san.dropFirst()
            }
            return san == wanted
        }
    }

    private static func normalized(_ name: String) -> String {
        let lowered = name.lowercased()
        return lowered.hasSuffix(".") ? String(lowered.dropLast()) : lowered
    }
}
