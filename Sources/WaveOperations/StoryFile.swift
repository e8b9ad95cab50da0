import Foundation
import WaveProtocol
import WaveStore

/// The reference's story files: a JSON file with one story, an array of stories, or an object
/// whose `stories` is such an array; or a folder of such files (`*.json`, in name order). Each
/// story is read as `NewStory(json:)` reads it (the reference's field names).
public enum StoryFile {
    /// The stories at `path`, in file order.
    /// - Throws: ``StoryFileError`` naming the file and what is wrong with it.
    public static func load(from path: String) throws(StoryFileError) -> [NewStory] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw StoryFileError("no file or folder at \(path)")
        }
        var files = [path]
        if isFolder.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            files = names.filter { $0.hasSuffix(".json") }.sorted().map { (path as NSString).appendingPathComponent($0) }
            guard !files.isEmpty else { throw StoryFileError("no .json files in \(path)") }
        }
        var stories: [NewStory] = []
        for file in files {
            guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
                throw StoryFileError("cannot read \(file)")
            }
            guard let json = JSONValue(jsonText: text) else { throw StoryFileError("\(file) is not JSON") }
            let objects: [JSONValue]
            switch json {
            case .array(let items): objects = items
            case .object(let object):
                if case .array(let items)? = object["stories"] { objects = items } else { objects = [json] }
            default: throw StoryFileError("\(file) holds neither a story object nor an array of stories")
            }
            for object in objects {
                guard case .object(let fields) = object else { throw StoryFileError("\(file) holds a value that is not a story object") }
                do {
                    stories.append(try NewStory(json: fields))
                } catch {
                    throw StoryFileError("\(file): \(error.message)")
                }
            }
        }
        return stories
    }
}

/// A story file Wave cannot read: which file and why.
public struct StoryFileError: Error, Sendable, CustomStringConvertible {
    /// What is wrong, for the operator.
    public var message: String
    public var description: String { self.message }

    init(_ message: String) { self.message = message }
}
