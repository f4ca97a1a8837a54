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

    /// Appends two runs of bytes back to back (a header's name and value) with one capacity check.
    @inlinable
    mutating func writeRaw(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) {
        let total = first.count + second.count
        guard total > 0 else { return }
        writeWithUnsafeMutableBytes(minimumWritableBytes: total) { out in
            let base = out.baseAddress!
            if let a = first.baseAddress { base.copyMemory(from: a, byteCount: first.count) }
            if let b = second.baseAddress { (base + first.count).copyMemory(from: b, byteCount: second.count) }
            return total
        }
    }
}
