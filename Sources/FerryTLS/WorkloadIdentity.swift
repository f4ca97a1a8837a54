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
}
