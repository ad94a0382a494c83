import Testing

@testable import HubModel

@Suite struct JSONTests {
    @Test func keepsIntegersAndFloatsApart() throws {
        let json = try JSON(parsing: #"{"5851":254,"5536":50.0,"x":-1.5e2}"#)
        #expect(json["5851"] == .int(254))
        #expect(json["5536"] == .double(50))
        #expect(json["x"] == .double(-150))
        #expect(json.description == #"{"5536":50.0,"5851":254,"x":-150.0}"#)
    }

    @Test func roundTripsStringsWithEscapesAndUnicode() throws {
        let text = #"{"name":"Küche \"Decke\" \u00e9 \ud83d\udca1\n"}"#
        let json = try JSON(parsing: text)
        #expect(json["name"]?.stringValue == "Küche \"Decke\" é 💡\n")
        #expect(try JSON(parsing: json.description) == json)
    }

    @Test func equalValuesSerialiseIdentically() throws {
        let a = try JSON(parsing: #"{"b":1,"a":{"d":[1,2],"c":null}}"#)
        let b = try JSON(parsing: #"{ "a": {"c": null, "d": [1, 2]}, "b": 1 }"#)
        #expect(a == b)
        #expect(a.description == b.description)
    }

    @Test(arguments: [
        ("", "unexpected end of input"),
        ("{", "expected a quoted key"),
        (#"{"a":1,}"#, "expected a quoted key"),
        (#"{'a':1}"#, "expected a quoted key"),
        ("[1,2", "unexpected end of input"),
        ("01", "unexpected text after the value"),
        ("tru", "unexpected end of input"),
        (#""\x""#, "invalid escape"),
        (#"{"a":1} trailing"#, "unexpected text after the value"),
        ("NaN", "unexpected character"),
        ("\"\u{01}\"", "control character"),
    ])
    func rejectsBrokenJSONWithAClearError(text: String, message: String) {
        #expect {
            try JSON(parsing: text)
        } throws: { error in
            (error as? JSONError)?.message.contains(message) == true
        }
    }

    @Test func limitsDepthAndSize() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONError.self) { try JSON(parsing: deep) }
        let big = "\"" + String(repeating: "a", count: 2000) + "\""
        #expect(throws: JSONError.self) { try JSON(parsing: big, limits: .init(maxBytes: 1000)) }
    }

    @Test func deepMergeReplacesLeavesAndKeepsOthers() throws {
        let base = try JSON(parsing: #"{"a":1,"o":{"x":1,"y":2}}"#)
        let patch = try JSON(parsing: #"{"o":{"y":3},"b":true}"#)
        #expect(base.merging(patch) == (try JSON(parsing: #"{"a":1,"b":true,"o":{"x":1,"y":3}}"#)))
    }

    /// The byte writer escapes exactly what JSON requires and keeps every other character.
    @Test func serialisesEscapesControlCharactersAndNumbersExactly() throws {
        let value: JSON = [
            "text": .string("a\"b\\c\n\r\t\u{08}\u{0C}\u{01}\u{1F}é€😀/"),
            "numbers": [0, -1, 42, .int(Int.max), .int(Int.min), 50.0, -2.5, 0.4599, 1e300],
            "flags": [true, false, nil],
        ]
        let expected =
            #"{"flags":[true,false,null],"numbers":[0,-1,42,9223372036854775807,-9223372036854775808,50.0,-2.5,0.4599,1e+300],"text":"a\"b\\c\n\r\t\b\f\u0001\u001fé€😀/"}"#
        #expect(value.description == expected)
        #expect(value.bytes == Array(expected.utf8))
        #expect(try JSON(parsing: value.bytes) == value)
    }

    @Test func parsesIntegersOfEveryLength() throws {
        for text in [
            "0", "-0", "7", "-7", "254", "65535", "1609459200", "999999999999999999", "-999999999999999999",
            "1000000000000000000", "9223372036854775807", "-9223372036854775808",
        ] {
            #expect(try JSON(parsing: text) == .int(Int(text)!), "\(text)")
        }
        #expect(try JSON(parsing: "9223372036854775808") == .double(9223372036854775808))
    }
}
