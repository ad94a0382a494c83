import HubModel

/// The gateway's numeric JSON keys and resource paths (see tradfri-gateway-protocol.md §3, §4).
public enum GatewayKey {
    // Common object keys
    public static let name = "9001"
    public static let createdAt = "9002"
    public static let instanceID = "9003"
    public static let reachable = "9019"
    public static let lastSeen = "9020"
    public static let otaState = "9054"
    public static let deviceType = "5750"
    public static let deviceInfo = "3"

    // Device info (inside "3")
    public static let manufacturer = "0"
    public static let model = "1"
    public static let serial = "2"
    public static let firmware = "3"
    public static let powerSource = "6"
    public static let otaImageType = "7"
    public static let battery = "9"

    // Capability arrays
    public static let remoteCapability = "15009"
    public static let lightCapability = "3311"
    public static let plugCapability = "3312"
    public static let sensorCapability = "3300"
    public static let repeaterCapability = "15014"
    public static let blindCapability = "15015"
    public static let airPurifierCapability = "15025"

    // Light and plug
    public static let on = "5850"
    public static let dimmer = "5851"
    public static let colorHex = "5706"
    public static let hue = "5707"
    public static let saturation = "5708"
    public static let colorX = "5709"
    public static let colorY = "5710"
    public static let colorTemperature = "5711"
    public static let transitionTime = "5712"
    public static let powerOnBehavior = "5849"

    // Blind
    public static let blindPosition = "5536"
    public static let blindTrigger = "5523"

    // Air purifier
    public static let fanMode = "5900"
    public static let filterRuntime = "5902"
    public static let filterStatus = "5903"
    public static let filterLifetime = "5904"
    public static let controlsLocked = "5905"
    public static let ledsOff = "5906"
    public static let airQuality = "5907"
    public static let fanSpeed = "5908"
    public static let motorRuntime = "5909"
    public static let filterRemaining = "5910"

    // Group
    public static let groupMembers = "9018"
    public static let groupMemberLink = "15002"
    public static let sceneID = "9039"
    public static let groupType = "9108"

    // Scene
    public static let sceneIndex = "9057"
    public static let sceneActive = "9058"
    public static let scenePredefined = "9068"
    public static let sceneUseCurrent = "9070"
    public static let sceneIcon = "9109"
    public static let sceneLightSettings = "15013"
    public static let sceneBlindSettings = "15016"
    public static let scenePlugSettings = "15021"
    public static let scenePurifierSettings = "15026"

    // Gateway details (15011/15012)
    public static let ntpServer = "9023"
    public static let gatewayFirmware = "9029"
    public static let gatewayTime = "9059"
    public static let gatewayTimeISO = "9060"
    public static let commissioningMode = "9061"
    public static let gatewayID = "9081"
    public static let updateProgress = "9055"
    public static let otaType = "9066"

    // Notifications (15006)
    public static let notificationEvent = "9015"
    public static let notificationDetails = "9017"
    public static let notificationActive = "9014"

    // Authentication (15011/9063)
    public static let identity = "9090"
    public static let psk = "9091"
}

/// Resource paths on the gateway.
public enum GatewayPath {
    public static let devices = "15001"
    public static let groups = "15004"
    public static let scenes = "15005"
    public static let notifications = "15006"
    public static let gatewayDetails = "15011/15012"
    public static let authenticate = "15011/9063"
    public static let reboot = "15011/9030"
    public static let wellKnownCore = ".well-known/core"

    public static func device(_ id: Int) -> String { "15001/\(id)" }
    public static func group(_ id: Int) -> String { "15004/\(id)" }
    public static func scenes(ofGroup group: Int) -> String { "15005/\(group)" }
    public static func scene(_ id: Int, ofGroup group: Int) -> String { "15005/\(group)/\(id)" }
}

/// The identity a client uses, with the security code as key, only to create its own identity.
public let bootstrapIdentity = "Client_identity"

/// Notification event codes in `15006`.
public enum GatewayEvent {
    public static let firmwareAvailable = 1001
    public static let rebooting = 1003
    public static let internetLost = 5001
}
