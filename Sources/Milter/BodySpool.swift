import Foundation

/// A message body as it arrives in chunks: kept in memory up to a threshold, then moved to an
/// unlinked temporary file in the daemon's private directory (so it vanishes with the process,
/// whatever happens), which keeps memory bounded while large messages are still arriving.
final class BodySpool {
    private let threshold: Int
    private let directory: String
    private var memory: [UInt8] = []
    private var descriptor: Int32 = -1
    private(set) var count = 0

    init(threshold: Int, directory: String) {
        self.threshold = threshold
        self.directory = directory
    }

    deinit { reset() }

    /// True once the body has moved to a file.
    var isSpooled: Bool { descriptor >= 0 }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        count += bytes.count
        if descriptor < 0 && memory.count + bytes.count <= threshold {
            memory.append(contentsOf: bytes)
            return
        }
        if descriptor < 0 {
            var template = Array((directory + "/body.XXXXXX").utf8CString)
            descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            guard descriptor >= 0 else { throw SpoolError("creating a spool file in \(directory)", errno) }
            template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
            try memory.withUnsafeBytes(write)
            memory = []
        }
        try write(bytes)
    }

    private func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let written = Foundation.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { throw SpoolError("writing the spool file in \(directory)", errno) }
            offset += written
        }
    }

    /// The whole body.
    func bytes() throws -> [UInt8] {
        guard descriptor >= 0 else { return memory }
        var result = [UInt8](repeating: 0, count: count)
        var offset = 0
        try result.withUnsafeMutableBytes { buffer in
            while offset < count {
                let read = pread(descriptor, buffer.baseAddress! + offset, count - offset, off_t(offset))
                if read < 0 && errno == EINTR { continue }
                guard read > 0 else { throw SpoolError("reading the spool file back", read < 0 ? errno : EIO) }
                offset += read
            }
        }
        return result
    }

    func reset() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        memory = []
        count = 0
    }
}

struct SpoolError: Error, CustomStringConvertible {
    let description: String
    init(_ operation: String, _ code: Int32) {
        description = "\(operation): \(String(cString: strerror(code)))"
    }
}
