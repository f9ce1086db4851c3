import Foundation
import MIME

/// The committed corpus of test messages (scripts/make-mime-corpus.py wrote them).
enum Corpus {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Corpus")

    static let names: [String] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".eml") }.sorted()
    }()

    static func bytes(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: directory.appendingPathComponent(name)))
    }

    /// Splits a message file into header fields and body, as the milter receives them.
    static func split(_ bytes: [UInt8]) throws -> (headers: [HeaderField], body: [UInt8]) {
        let message = try Message(bytes: bytes)
        return (message.root.headers, Array(message.bytes[message.root.bodyRange]))
    }

    /// Every leaf's decoded content in document order (text with CRLF line ends), entering
    /// message/rfc822 parts. What a reader sees must survive signing preparation unchanged.
    static func leaves(_ message: Message) -> [[UInt8]] {
        var out: [[UInt8]] = []
        func walk(_ entity: Entity) {
            if entity.contentType.isMultipart && !entity.delimiterRanges.isEmpty {
                entity.parts.forEach(walk)
            } else if let inner = entity.encapsulated {
                walk(inner.entity)
            } else {
                let content = message.decodedBody(of: entity)
                if entity.contentType.type == "text" {
                    out.append(Array(String(decoding: content, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n").utf8))
                } else {
                    out.append(content)
                }
            }
        }
        walk(message.root)
        return out
    }
}
