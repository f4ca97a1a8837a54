import NIOCore

extension ByteBuffer {
    /// Appends `bytes` with one capacity check and a plain copy. `writeBytes` goes through a
    /// generic path (slicing, exclusivity checks) that cost more than the copy on the hot path.
    @inlinable
    mutating func writeRaw(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        writeWithUnsafeMutableBytes(minimumWritableBytes: bytes.count) { out in
            out.baseAddress!.copyMemory(from: source, byteCount: bytes.count)
            return bytes.count
        }
    }
}
