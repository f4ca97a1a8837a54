import FuzzSupport
import FerryConfig

/// Configuration files: loading never traps (a mistake is a located ConfigError), collecting
/// every error never traps either, and a configuration that loads can be summarized.
@_cdecl("fuzz_config_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let config = try? ConfigLoader.parse(yaml: text, source: "fuzz.yaml") else { return 0 }
    _ = ConfigSummary.lines(config)
    return 0
}
