internal import SpateProtos

/// Encodes a `spate.probe.v1.ProbeStatus` heartbeat. Flow-record consumers must reject these
/// as malformed; the probe uses it to inject "a valid message of another type".
public enum ProbeStatusEncoder {
    public static func encode(probeID: UInt32, uptimeSeconds: UInt64, recordsSent: UInt64, softwareVersion: String) -> [UInt8] {
        var msg = Spate__Probe__V1__ProbeStatus()
        spate__probe__v1__probe_status__init(&msg)
        msg.probe_id = probeID
        msg.uptime_s = uptimeSeconds
        msg.records_sent = recordsSent
        return softwareVersion.withCString { version in
            msg.software_version = UnsafeMutablePointer(mutating: version)
            let size = spate__probe__v1__probe_status__get_packed_size(&msg)
            return [UInt8](unsafeUninitializedCapacity: size) { buf, n in
                n = spate__probe__v1__probe_status__pack(&msg, buf.baseAddress!)
            }
        }
    }
}
