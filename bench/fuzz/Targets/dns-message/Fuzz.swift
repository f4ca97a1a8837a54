import FuzzSupport
import FerryDiscovery

/// DNS answers from the network: decoding never traps (a malformed answer is an error), and
/// a decoded answer's names and addresses are text that can be printed.
@_cdecl("fuzz_dns_message_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let response = try? DNSMessage.decode(bytes) else { return 0 }
    for record in response.answers + response.additionals {
        _ = "\(record.name) \(record.ttl) \(record.data)"
    }
    return 0
}
