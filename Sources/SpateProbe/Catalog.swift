/// How an application's flows look: volumes, direction, duration, transport.
struct TrafficProfile: Sendable {
    /// log(bytes down) ~ N(mu, sigma).
    var downMu: Double
    var downSigma: Double
    /// bytes up ≈ bytes down × upRatio (with its own spread).
    var upRatio: Double
    /// Mean packet sizes, bytes.
    var downPacket: Double
    var upPacket: Double
    /// log(duration seconds) ~ N(mu, 1).
    var durationMu: Double
    /// Share of records that are interim updates of a long flow (flows = 0).
    var interimShare: Double
    /// When > 1, records fold up to this many short flows (DNS, NTP).
    var foldedFlows: UInt32

    static let video = TrafficProfile(downMu: 15.2, downSigma: 1.6, upRatio: 0.03, downPacket: 1350, upPacket: 90, durationMu: 4.5, interimShare: 0.35, foldedFlows: 1)
    static let audio = TrafficProfile(downMu: 13.0, downSigma: 1.2, upRatio: 0.05, downPacket: 1200, upPacket: 90, durationMu: 4.8, interimShare: 0.3, foldedFlows: 1)
    static let web = TrafficProfile(downMu: 10.8, downSigma: 1.7, upRatio: 0.15, downPacket: 1100, upPacket: 250, durationMu: 1.8, interimShare: 0.05, foldedFlows: 1)
    static let social = TrafficProfile(downMu: 12.5, downSigma: 1.8, upRatio: 0.12, downPacket: 1250, upPacket: 200, durationMu: 3.2, interimShare: 0.2, foldedFlows: 1)
    static let messaging = TrafficProfile(downMu: 8.8, downSigma: 1.5, upRatio: 0.6, downPacket: 400, upPacket: 300, durationMu: 4.0, interimShare: 0.25, foldedFlows: 1)
    static let voip = TrafficProfile(downMu: 13.3, downSigma: 1.1, upRatio: 0.9, downPacket: 220, upPacket: 220, durationMu: 5.2, interimShare: 0.4, foldedFlows: 1)
    static let gaming = TrafficProfile(downMu: 12.0, downSigma: 1.3, upRatio: 0.4, downPacket: 180, upPacket: 120, durationMu: 6.0, interimShare: 0.5, foldedFlows: 1)
    static let download = TrafficProfile(downMu: 16.5, downSigma: 1.9, upRatio: 0.02, downPacket: 1450, upPacket: 80, durationMu: 3.5, interimShare: 0.3, foldedFlows: 1)
    static let cloud = TrafficProfile(downMu: 12.8, downSigma: 2.0, upRatio: 1.2, downPacket: 1100, upPacket: 1200, durationMu: 3.0, interimShare: 0.2, foldedFlows: 1)
    static let dns = TrafficProfile(downMu: 5.3, downSigma: 0.5, upRatio: 0.45, downPacket: 140, upPacket: 70, durationMu: -3.0, interimShare: 0, foldedFlows: 6)
    static let p2p = TrafficProfile(downMu: 14.5, downSigma: 2.2, upRatio: 0.8, downPacket: 1300, upPacket: 1300, durationMu: 5.5, interimShare: 0.45, foldedFlows: 1)
    static let tunnel = TrafficProfile(downMu: 14.0, downSigma: 2.0, upRatio: 0.25, downPacket: 1200, upPacket: 400, durationMu: 6.0, interimShare: 0.5, foldedFlows: 1)
    static let mail = TrafficProfile(downMu: 10.5, downSigma: 1.6, upRatio: 0.3, downPacket: 900, upPacket: 400, durationMu: 2.0, interimShare: 0.05, foldedFlows: 1)
    static let iot = TrafficProfile(downMu: 7.0, downSigma: 1.0, upRatio: 1.5, downPacket: 150, upPacket: 200, durationMu: 1.0, interimShare: 0.05, foldedFlows: 2)
}

/// One application the simulated DPI engine classifies.
struct ApplicationSpec: Sendable {
    var name: String
    var category: String
    /// Transport choices: 6 TCP, 17 UDP; QUIC apps use both.
    var protocols: [UInt8]
    var ports: [UInt16]
    /// Server name suffix for TLS SNI / HTTP Host ("" when the protocol carries none).
    var domain: String
    var profile: TrafficProfile
}

/// The simulated probes' world: ≥ 100 applications in popularity order (rank 1 first),
/// countries and device types with their shares.
enum Catalog {
    private static func app(_ name: String, _ category: String, _ protocols: [UInt8], _ ports: [UInt16], _ domain: String, _ profile: TrafficProfile) -> ApplicationSpec {
        ApplicationSpec(name: name, category: category, protocols: protocols, ports: ports, domain: domain, profile: profile)
    }

    static let applications: [ApplicationSpec] = [
        app("youtube", "video-streaming", [6, 17], [443], "googlevideo.com", .video),
        app("https", "web", [6], [443], "", .web),
        app("netflix", "video-streaming", [6], [443], "nflxvideo.net", .video),
        app("facebook", "social-network", [6, 17], [443], "facebook.com", .social),
        app("instagram", "social-network", [6, 17], [443], "cdninstagram.com", .social),
        app("tiktok", "social-network", [6, 17], [443], "tiktokcdn.com", .video),
        app("dns", "network-infrastructure", [17], [53], "", .dns),
        app("whatsapp", "messaging", [6], [443, 5222], "whatsapp.net", .messaging),
        app("google", "web", [6, 17], [443], "google.com", .web),
        app("apple-icloud", "cloud-storage", [6], [443], "icloud.com", .cloud),
        app("amazon-prime-video", "video-streaming", [6], [443], "aiv-cdn.net", .video),
        app("spotify", "audio-streaming", [6], [443, 4070], "scdn.co", .audio),
        app("snapchat", "social-network", [6, 17], [443], "sc-cdn.net", .social),
        app("http", "web", [6], [80, 8080], "", .web),
        app("quic", "web", [17], [443], "", .web),
        app("microsoft-365", "productivity", [6], [443], "office.com", .web),
        app("windows-update", "software-update", [6], [443, 80], "windowsupdate.com", .download),
        app("disney-plus", "video-streaming", [6], [443], "dssott.com", .video),
        app("twitter", "social-network", [6, 17], [443], "twimg.com", .social),
        app("telegram", "messaging", [6], [443, 80], "telegram.org", .messaging),
        app("zoom", "conferencing", [17, 6], [8801, 443], "zoom.us", .voip),
        app("microsoft-teams", "conferencing", [17, 6], [3478, 443], "teams.microsoft.com", .voip),
        app("google-meet", "conferencing", [17], [19302, 443], "meet.google.com", .voip),
        app("apple-itunes", "software-update", [6], [443], "apple.com", .download),
        app("google-play", "software-update", [6], [443], "play.googleapis.com", .download),
        app("twitch", "video-streaming", [6], [443], "ttvnw.net", .video),
        app("reddit", "social-network", [6], [443], "redditmedia.com", .social),
        app("linkedin", "social-network", [6], [443], "licdn.com", .social),
        app("pinterest", "social-network", [6], [443], "pinimg.com", .social),
        app("amazon", "e-commerce", [6], [443], "amazon.com", .web),
        app("ebay", "e-commerce", [6], [443], "ebay.com", .web),
        app("aliexpress", "e-commerce", [6], [443], "aliexpress.com", .web),
        app("wikipedia", "web", [6], [443], "wikipedia.org", .web),
        app("gmail", "email", [6], [443, 993], "gmail.com", .mail),
        app("outlook", "email", [6], [443, 993], "outlook.com", .mail),
        app("imaps", "email", [6], [993], "", .mail),
        app("smtp", "email", [6], [587, 25], "", .mail),
        app("steam", "gaming", [6, 17], [443, 27015], "steamcontent.com", .download),
        app("fortnite", "gaming", [17, 6], [9000, 443], "epicgames.com", .gaming),
        app("call-of-duty", "gaming", [17], [3074], "activision.com", .gaming),
        app("roblox", "gaming", [17, 6], [49152, 443], "roblox.com", .gaming),
        app("minecraft", "gaming", [6], [25565], "minecraft.net", .gaming),
        app("league-of-legends", "gaming", [17, 6], [5000, 2099], "riotgames.com", .gaming),
        app("playstation-network", "gaming", [6], [443, 3478], "playstation.net", .download),
        app("xbox-live", "gaming", [6, 17], [3074, 443], "xboxlive.com", .download),
        app("dropbox", "cloud-storage", [6], [443], "dropbox.com", .cloud),
        app("google-drive", "cloud-storage", [6], [443], "drive.google.com", .cloud),
        app("onedrive", "cloud-storage", [6], [443], "onedrive.live.com", .cloud),
        app("box", "cloud-storage", [6], [443], "box.com", .cloud),
        app("aws-s3", "cloud-storage", [6], [443], "amazonaws.com", .cloud),
        app("azure", "cloud-services", [6], [443], "azure.com", .cloud),
        app("google-cloud", "cloud-services", [6], [443], "googleapis.com", .cloud),
        app("akamai", "cdn", [6], [443, 80], "akamaized.net", .download),
        app("cloudflare", "cdn", [6, 17], [443], "cloudflare.com", .web),
        app("fastly", "cdn", [6], [443], "fastly.net", .web),
        app("apple-push", "messaging", [6], [5223, 443], "push.apple.com", .iot),
        app("google-push", "messaging", [6], [5228], "mtalk.google.com", .iot),
        app("signal", "messaging", [6], [443], "signal.org", .messaging),
        app("viber", "messaging", [17, 6], [5242, 443], "viber.com", .messaging),
        app("wechat", "messaging", [6], [443, 80], "weixin.qq.com", .messaging),
        app("skype", "conferencing", [17, 6], [3478, 443], "skype.com", .voip),
        app("webex", "conferencing", [17, 6], [9000, 443], "webex.com", .voip),
        app("facetime", "conferencing", [17], [3478], "apple.com", .voip),
        app("sip", "voip", [17], [5060], "", .voip),
        app("rtp", "voip", [17], [16384], "", .voip),
        app("deezer", "audio-streaming", [6], [443], "dzcdn.net", .audio),
        app("apple-music", "audio-streaming", [6], [443], "itunes.apple.com", .audio),
        app("soundcloud", "audio-streaming", [6], [443], "sndcdn.com", .audio),
        app("podcasts", "audio-streaming", [6], [443], "podtrac.com", .audio),
        app("hbo-max", "video-streaming", [6], [443], "hbomaxcdn.com", .video),
        app("hulu", "video-streaming", [6], [443], "hulustream.com", .video),
        app("dailymotion", "video-streaming", [6], [443], "dmcdn.net", .video),
        app("vimeo", "video-streaming", [6], [443], "vimeocdn.com", .video),
        app("dazn", "video-streaming", [6], [443], "dazn.com", .video),
        app("canal-plus", "video-streaming", [6], [443], "canal-plus.com", .video),
        app("bbc-iplayer", "video-streaming", [6], [443], "bbci.co.uk", .video),
        app("iptv", "video-streaming", [17], [5000], "", .video),
        app("bittorrent", "p2p", [6, 17], [6881, 51413], "", .p2p),
        app("edonkey", "p2p", [6], [4662], "", .p2p),
        app("openvpn", "vpn", [17, 6], [1194], "", .tunnel),
        app("wireguard", "vpn", [17], [51820], "", .tunnel),
        app("ipsec", "vpn", [17], [4500, 500], "", .tunnel),
        app("ssh", "remote-access", [6], [22], "", .tunnel),
        app("rdp", "remote-access", [6, 17], [3389], "", .tunnel),
        app("teamviewer", "remote-access", [6], [5938, 443], "teamviewer.com", .tunnel),
        app("anydesk", "remote-access", [6], [7070, 443], "anydesk.com", .tunnel),
        app("ntp", "network-infrastructure", [17], [123], "", .dns),
        app("dns-over-https", "network-infrastructure", [6], [443], "dns.google", .dns),
        app("stun", "network-infrastructure", [17], [3478], "", .iot),
        app("icmp", "network-infrastructure", [1], [0], "", .dns),
        app("dhcp", "network-infrastructure", [17], [67], "", .dns),
        app("mqtt", "iot", [6], [8883, 1883], "", .iot),
        app("coap", "iot", [17], [5683], "", .iot),
        app("google-ads", "advertising", [6], [443], "doubleclick.net", .web),
        app("facebook-ads", "advertising", [6], [443], "facebook.net", .web),
        app("google-analytics", "advertising", [6], [443], "google-analytics.com", .web),
        app("criteo", "advertising", [6], [443], "criteo.com", .web),
        app("google-maps", "navigation", [6], [443], "maps.googleapis.com", .web),
        app("waze", "navigation", [6], [443], "waze.com", .web),
        app("uber", "transport", [6], [443], "uber.com", .web),
        app("booking", "travel", [6], [443], "booking.com", .web),
        app("airbnb", "travel", [6], [443], "airbnb.com", .web),
        app("paypal", "finance", [6], [443], "paypal.com", .web),
        app("banking", "finance", [6], [443], "bank.example", .web),
        app("news", "news", [6], [443], "news.example", .web),
        app("cnn", "news", [6], [443], "cnn.com", .web),
        app("le-monde", "news", [6], [443], "lemonde.fr", .web),
        app("github", "developer", [6], [443, 22], "github.com", .cloud),
        app("docker-hub", "developer", [6], [443], "docker.io", .download),
        app("npm", "developer", [6], [443], "npmjs.org", .download),
        app("chatgpt", "ai-assistant", [6, 17], [443], "openai.com", .web),
        app("claude", "ai-assistant", [6], [443], "claude.ai", .web),
        app("gemini", "ai-assistant", [6, 17], [443], "gemini.google.com", .web),
        app("unknown-tcp", "unclassified", [6], [8443, 9443, 10000], "", .web),
        app("unknown-udp", "unclassified", [17], [10001, 40000], "", .gaming),
    ]

    /// ISO codes of server locations with shares and a base RTT (µs) from the probes.
    static let countries: [(code: String, weight: Double, rttMicros: Double)] = [
        ("US", 30, 95_000), ("FR", 18, 9_000), ("DE", 12, 16_000), ("IE", 9, 22_000), ("NL", 8, 14_000),
        ("GB", 6, 15_000), ("SE", 2, 30_000), ("ES", 2, 25_000), ("IT", 2, 24_000), ("JP", 1.5, 230_000),
        ("SG", 1.5, 170_000), ("CN", 1, 250_000), ("BR", 1, 190_000), ("IN", 1, 140_000), ("CA", 1, 90_000),
        ("AU", 0.5, 280_000), ("", 3.5, 40_000),
    ]

    static let deviceTypes: [(name: String, weight: Double)] = [
        ("smartphone-android", 38), ("smartphone-ios", 27), ("laptop", 12), ("desktop", 6), ("tablet", 6),
        ("smart-tv", 5), ("game-console", 2.5), ("iot", 2.5), ("", 1),
    ]
}
