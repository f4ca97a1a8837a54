import NIOSSL

/// swift-nio-ssl's errors as short sentences for logs and error answers: BoringSSL's reason
/// (`CERTIFICATE_VERIFY_FAILED` -> "certificate verify failed") without its error codes and
/// source paths.
public enum TLSErrorText {
    public static func describe(_ error: any Error) -> String {
        switch error {
        case let error as NIOSSLError:
            switch error {
            case .handshakeFailed(let inner): return "handshake failed: " + describe(inner)
            case .shutdownFailed(let inner): return "shutdown failed: " + describe(inner)
            case .uncleanShutdown: return "the peer closed the connection without a TLS close_notify"
            case .failedToLoadCertificate: return "the certificate does not load"
            case .failedToLoadPrivateKey: return "the private key does not load"
            case .noSuchFilesystemObject: return "no such file"
            default: return "\(error)"
            }
        case let error as BoringSSLError:
            switch error {
            case .sslError(let stack), .unknownError(let stack), .invalidSNIName(let stack), .failedToSetALPN(let stack):
                let reasons = stack.map { reason(of: "\($0)") }
                return reasons.isEmpty ? "unknown TLS error" : reasons.joined(separator: "; ")
            case .zeroReturn: return "the peer closed the TLS session"
            case .syscallError: return "the connection failed during the handshake"
            default: return "\(error)"
            }
        case let error as NIOSSLExtraError:
            return "\(error)"
        default:
            return "\(error)"
        }
    }

    /// `Error: 268435581 error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at ...`
    /// -> `certificate verify failed`.
    static func reason(of text: String) -> String {
        let marker = "OPENSSL_internal:"
        guard let start = text.firstRange(of: marker) else {
            return text.hasPrefix("Error:  ") ? String(text.dropFirst("Error:  ".count)) : text
        }
        var reason = text[start.upperBound...]
        if let at = reason.firstRange(of: " at ") { reason = reason[..<at.lowerBound] }
        return String(reason.lowercased().map { $0 == "_" ? " " : $0 })
    }
}
