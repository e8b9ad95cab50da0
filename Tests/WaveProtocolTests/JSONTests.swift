import Foundation
import Testing

@testable import WaveProtocol

@Suite("JSON payloads")
struct JSONTests {
    @Test(
        "valid JSON parses to the same value Foundation reads",
        arguments: [
            #"{}"#, #"[]"#, #"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#, #"  {"x" : -1.5e3 , "y":0.25}  "#,
            #"{"s":"line\nbreak \"quoted\" \\ back \/ slash \u00e9 \ud83d\ude00"}"#, #""plain""#, "3", "-0", "1E+2",
            #"{"unicode":"héllo wörld 😀"}"#, #"[[[[[]]]]]"#,
        ])
    func parses(text: String) throws {
        let ours = try #require(JSONValue(jsonText: text))
        let foundation = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        let viaFoundation = try JSONDecoder().decode(JSONValue.self, from: JSONSerialization.data(withJSONObject: foundation, options: [.fragmentsAllowed]))
        #expect(ours == viaFoundation)
        // What we write, we read back.
        #expect(JSONValue(jsonText: ours.jsonText) == ours)
    }

    @Test(
        "invalid JSON is refused",
        arguments: [
            "", "{", "}", "[1,]", "{\"a\":}", "{\"a\" 1}", "{a:1}", "tru", "nul", "01", "1.", ".5", "-", "1e", "\"unterminated",
            "\"bad \\x escape\"", "\"\\ud800\"", "\"\\udc00\"", "{\"a\":1}}", "[1 2]", "\"tab\there\"", "NaN",
        ])
    func refuses(text: String) {
        #expect(JSONValue(jsonText: text) == nil, "\(text)")
    }

    @Test("nesting beyond the bound is refused without exhausting the stack")
    func depth() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(JSONValue(jsonText: deep) == nil)
        #expect(JSONValue(jsonText: "[[[1]]]", maxDepth: 2) == nil)
        #expect(JSONValue(jsonText: "[[[1]]]", maxDepth: 3) != nil)
    }

    @Test("writing escapes what JSON requires and sorts keys")
    func writes() {
        let value: JSONValue = ["b": "x\"y\\z\n\u{01}", "a": [1, 2.5, nil, true]]
        #expect(value.jsonText == #"{"a":[1,2.5,null,true],"b":"x\"y\\z\n\u0001"}"#)
    }
}
