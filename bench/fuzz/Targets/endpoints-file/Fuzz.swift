import FuzzSupport
import FerryConfig

/// Endpoints files (rewritten by deploy tools while Ferry reads them): parsing never traps.
@_cdecl("fuzz_endpoints_file_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = try? EndpointsFile.parse(text, source: "endpoints.yaml")
    return 0
}
