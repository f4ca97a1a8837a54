import FuzzSupport
import FerryGRPC
import NIOCore

/// gRPC length-prefixed messages: the framer never traps, and where the bytes are cut into
/// reads (the first input byte picks the cuts) does not change its verdict.
@_cdecl("fuzz_message_framer_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    guard size > 1 else { return 0 }
    let step = Int(data[0]) + 1
    let body = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    let limit = 4096

    var whole = GRPCMessageFramer(maxMessageSize: limit)
    let wholeVerdict: GRPCMessageFramer.FramingError?
    do { try whole.scan(body); wholeVerdict = nil } catch { wholeVerdict = error }

    var pieces = GRPCMessageFramer(maxMessageSize: limit)
    var piecesVerdict: GRPCMessageFramer.FramingError?
    var offset = 0
    while offset < body.count && piecesVerdict == nil {
        let end = min(body.count, offset + step)
        var buffer = ByteBufferAllocator().buffer(capacity: end - offset)
        buffer.writeBytes(UnsafeRawBufferPointer(rebasing: body[offset..<end]))
        do { try pieces.scan(buffer) } catch { piecesVerdict = error }
        offset = end
    }
    precondition((wholeVerdict == nil) == (piecesVerdict == nil),
                 "whole: \(String(describing: wholeVerdict)), in pieces of \(step): \(String(describing: piecesVerdict))")
    return 0
}
