import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// A failed connect in the words of the system (`Connection refused`, `No route to host`,
/// `no connection within 500ms`), not NIO's debug description of its error types.
package enum ConnectErrorText {
    package static func of(_ error: Error) -> String {
        switch error {
        case let error as NIOConnectionError:
            if let first = error.connectionErrors.first { return of(first.error) }
            if let dns = error.dnsAError ?? error.dnsAAAAError { return "cannot resolve \(error.host): \(of(dns))" }
            return "cannot connect to \(error.host):\(error.port)"
        case let error as IOError:
            return String(cString: strerror(error.errnoCode))
        case ChannelError.connectTimeout(let amount):
            return "no connection within \(amount.nanoseconds / 1_000_000)ms (connect_timeout)"
        case let error as SocketAddressError:
            return "not an address to connect to (\(error))"
        default:
            return "\(error)"
        }
    }
}
