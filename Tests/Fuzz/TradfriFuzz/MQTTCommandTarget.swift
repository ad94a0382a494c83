import TradfriModel

/// An MQTT command as the bridge receives it, turned into a command for every device and room of
/// the demo home, and that command into the gateway writes the bridge would send.
struct MQTTCommandTarget: FuzzTarget {
    static let name = "mqtt-command"

    func run(_ input: [UInt8]) {
        let (attribute, payload) = Fuzz.firstLine(input)
        guard let attributes = try? CommandParser.attributes(payload: payload, attribute: attribute) else { return }
        let expectations = [ExpectedState(), ExpectedState(on: true, brightness: 128), ExpectedState(on: false)]
        for device in DemoHome.devices {
            for expected in expectations {
                guard
                    var command = try? CommandParser.command(from: attributes, for: .device(device), expected: expected)
                else { continue }
                // Every write of the command, as the queue sends them one after another.
                for _ in 0..<4 {
                    let (write, remainder) = CommandPlanner.plan(command, for: device)
                    _ = write?.description
                    guard let remainder else { break }
                    command = remainder
                }
            }
        }
        for group in DemoHome.groups {
            let members = DemoHome.members(of: group)
            let target = CommandTarget.group(group, members: members, scenes: DemoHome.scenes(of: group))
            for expected in expectations {
                guard let command = try? CommandParser.command(from: attributes, for: target, expected: expected)
                else { continue }
                let (groupPart, memberCommands) = CommandPlanner.split(command, for: group, members: members)
                if let groupPart { _ = CommandPlanner.plan(groupPart, for: group, members: members).write?.description }
                for (id, memberCommand) in memberCommands {
                    if let member = members.first(where: { $0.id == id }) {
                        _ = CommandPlanner.plan(memberCommand, for: member).write?.description
                    }
                }
            }
        }
    }
}
