public import MIME

/// A change to the top-level header, as libmilter makes them (`smfi_chgheader`,
/// `smfi_insheader`, `smfi_addheader`).
public enum HeaderEdit: Sendable, Equatable {
    /// Delete the `occurrence`-th field of that name (1-based).
    case delete(name: String, occurrence: Int)
    /// Replace the value of the `occurrence`-th field of that name (1-based).
    case change(name: String, occurrence: Int, value: String)
    /// Insert at position `index` (0 is the top).
    case insert(index: Int, name: String, value: String)
    /// Append at the end of the header.
    case add(name: String, value: String)

    /// Applies edits to a header list, as the MTA would.
    public static func apply(_ edits: [HeaderEdit], to headers: [HeaderField]) -> [HeaderField] {
        var result = headers
        for edit in edits {
            switch edit {
            case .delete(let name, let occurrence):
                if let index = position(of: name, occurrence: occurrence, in: result) {
                    result.remove(at: index)
                }
            case .change(let name, let occurrence, let value):
                if let index = position(of: name, occurrence: occurrence, in: result) {
                    result[index] = HeaderField(name: result[index].name, value: value)
                }
            case .insert(let index, let name, let value):
                result.insert(HeaderField(name: name, value: value), at: min(index, result.count))
            case .add(let name, let value):
                result.append(HeaderField(name: name, value: value))
            }
        }
        return result
    }

    /// Where the `occurrence`-th field named `name` (1-based) stands, as libmilter counts.
    static func position(of name: String, occurrence: Int, in headers: [HeaderField]) -> Int? {
        var seen = 0
        return headers.firstIndex { field in
            guard field.hasName(name) else { return false }
            seen += 1
            return seen == occurrence
        }
    }
}
