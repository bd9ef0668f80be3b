/// What the writer does with a store failure. The rule that keeps exactly-once: only a
/// failure caused by the document's own content is final (the document goes to the
/// dead-letter topic); every other refusal — authentication, authorization, index write
/// blocks, a closed or missing index, a request too large, an answer that cannot be read —
/// says nothing about the document, so it is retried (the partitions pause meanwhile), and a
/// checkpoint never covers it.
public enum StoreErrorPolicy {
    /// The writer's action.
    public enum Action: Sendable, Hashable {
        /// Stored (or a newer version is stored).
        case stored
        /// Retry later, with backoff; `refusal` when the store refused rather than failed
        /// transiently (shown as a warning in logs, `/metrics` and `spate status`).
        case retry(refusal: Bool)
        /// The document itself is unacceptable: dead-letter it with the store's reason.
        case deadLetter
        /// The request was too large (413): split it and send the halves.
        case split
    }

    /// Error types that name the document's content (mapping, parsing, illegal values).
    public static let contentErrorTypes: Set<String> = [
        "mapper_parsing_exception", "document_parsing_exception", "strict_dynamic_mapping_exception",
        "illegal_argument_exception", "parse_exception", "json_parse_exception", "x_content_parse_exception",
        "mapper_exception", "number_format_exception",
    ]

    /// The action for one bulk item.
    public static func action(for item: BulkItemResult) -> Action {
        switch item.outcome {
        case .written, .versionConflict: return .stored
        case .retriable: return .retry(refusal: false)
        case .rejected:
            if (item.status == 400 || item.status == 0), let type = item.errorType, contentErrorTypes.contains(type) {
                return .deadLetter
            }
            return .retry(refusal: true)
        }
    }

    /// The action for a bulk request that failed as a whole, holding `documents` documents.
    public static func action(for error: any Error, documents: Int) -> Action {
        guard let e = error as? ElasticError else { return .retry(refusal: false) }
        if e.status == 413 { return documents > 1 ? .split : .deadLetter }
        return .retry(refusal: !e.isRetriable)
    }
}
