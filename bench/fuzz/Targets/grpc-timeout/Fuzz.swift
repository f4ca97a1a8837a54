import FuzzSupport
import FerryGRPC

/// `grpc-timeout` values: parsing never traps, and a value that parses is written back as a
/// header that parses again to no less than it (a timeout is never made shorter by a hop).
@_cdecl("fuzz_grpc_timeout_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    guard case .success(let timeout) = GRPCTimeout.parse(bytes) else { return 0 }
    let written = timeout.headerValue
    guard case .success(let again) = GRPCTimeout.parse(written) else {
        fatalError("\(timeout.nanoseconds) ns was written as \(written), which does not parse")
    }
    precondition(again.nanoseconds >= timeout.nanoseconds || again.nanoseconds == Int64.max,
                 "\(timeout.nanoseconds) ns was written as \(written), which reads as \(again.nanoseconds) ns")
    return 0
}
