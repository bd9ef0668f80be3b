/// One flow record as a probe reports it: the Swift value form of `spate.probe.v1.FlowRecord`.
///
/// Value semantics, `Hashable` so tests can compare whole records. The hot ingest path never
/// builds these (it reads the decoded C structs in place); tools, tests and the probe do.
public struct FlowRecord: Sendable, Hashable {
    /// Flow start, Unix milliseconds UTC.
    public var startTimeMs: UInt64
    /// End of the interval this record covers; the record's event time.
    public var endTimeMs: UInt64
    public var probeID: UInt32
    public var interfaceIndex: UInt32
    public var clientIP: IPAddress
    public var serverIP: IPAddress
    public var clientPort: UInt16
    public var serverPort: UInt16
    /// IANA protocol number (6 TCP, 17 UDP, …).
    public var l4Protocol: UInt8
    public var application: String
    public var applicationCategory: String
    /// TLS SNI or HTTP Host; empty when unknown.
    public var host: String
    public var subscriberID: String
    public var deviceType: String
    /// ISO 3166-1 alpha-2; empty when unknown.
    public var country: String
    public var bytesUp: UInt64
    public var bytesDown: UInt64
    public var packetsUp: UInt64
    public var packetsDown: UInt64
    /// Flows this record accounts for (1 new, 0 interim update, n folded short flows).
    public var flows: UInt32
    /// Handshake RTT in microseconds; 0 when not measured.
    public var rttMicros: UInt32
    public var retransmissions: UInt32

    /// A record with every field given; defaults describe an empty TCP flow.
    public init(
        startTimeMs: UInt64, endTimeMs: UInt64, probeID: UInt32, interfaceIndex: UInt32 = 0,
        clientIP: IPAddress, serverIP: IPAddress, clientPort: UInt16, serverPort: UInt16,
        l4Protocol: UInt8 = 6, application: String, applicationCategory: String, host: String = "",
        subscriberID: String, deviceType: String = "", country: String = "",
        bytesUp: UInt64 = 0, bytesDown: UInt64 = 0, packetsUp: UInt64 = 0, packetsDown: UInt64 = 0,
        flows: UInt32 = 1, rttMicros: UInt32 = 0, retransmissions: UInt32 = 0
    ) {
        self.startTimeMs = startTimeMs
        self.endTimeMs = endTimeMs
        self.probeID = probeID
        self.interfaceIndex = interfaceIndex
        self.clientIP = clientIP
        self.serverIP = serverIP
        self.clientPort = clientPort
        self.serverPort = serverPort
        self.l4Protocol = l4Protocol
        self.application = application
        self.applicationCategory = applicationCategory
        self.host = host
        self.subscriberID = subscriberID
        self.deviceType = deviceType
        self.country = country
        self.bytesUp = bytesUp
        self.bytesDown = bytesDown
        self.packetsUp = packetsUp
        self.packetsDown = packetsDown
        self.flows = flows
        self.rttMicros = rttMicros
        self.retransmissions = retransmissions
    }
}

/// What one Kafka message carries: the records of one probe, sealed together.
public struct RecordBatch: Sendable, Hashable {
    public var probeID: UInt32
    /// Per-probe batch sequence number.
    public var sequence: UInt64
    /// When the probe sealed the batch, Unix milliseconds.
    public var createdMs: UInt64
    public var records: [FlowRecord]

    public init(probeID: UInt32, sequence: UInt64, createdMs: UInt64, records: [FlowRecord]) {
        self.probeID = probeID
        self.sequence = sequence
        self.createdMs = createdMs
        self.records = records
    }
}
