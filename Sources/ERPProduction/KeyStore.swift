import ERPCore
import ERPZeroMQ
import Foundation

/// CURVE key pairs of a topology's services: `<service>.key` holds the Z85 secret key (mode 0600),
/// `<service>.pub` the public key. A service's sockets use its own pair; each peer learns the
/// others' public keys from the `.pub` files, and the ZAP handler admits only those.
public struct KeyStore: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// Makes a key pair for every service that has none (existing keys are kept unless `replace`).
    @discardableResult
    public func generate(for services: [ServiceName], replace: Bool = false) throws -> [ServiceName] {
        try generate(named: services.map(\.rawValue), replace: replace).compactMap(ServiceName.init(named:))
    }

    /// Makes a key pair for every name (a service, or a client such as the scenario runner) that
    /// has none. Returns the names it made pairs for.
    @discardableResult
    public func generate(named names: [String], replace: Bool = false) throws -> [String] {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var made: [String] = []
        for name in names {
            let secretPath = path(name, "key")
            if fm.fileExists(atPath: secretPath) && !replace { continue }
            try write(try CurveKeyPair.generate(), named: name)
            made.append(name)
        }
        return made
    }

    /// A store at `directory` (made afresh, mode 0700) holding copies of these services' pairs,
    /// each read and checked here: `erp up` keeps the pairs in force at its start there.
    public func copies(of services: [ServiceName], into directory: String) throws -> KeyStore {
        let fm = FileManager.default
        try? fm.removeItem(atPath: directory)
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let copy = KeyStore(directory: directory)
        for service in services { try copy.write(try keyPair(of: service), named: service.rawValue) }
        return copy
    }

    /// Writes `pair` as `name`'s files, the secret key for its owner only (0600).
    private func write(_ pair: CurveKeyPair, named name: String) throws {
        let secretPath = path(name, "key")
        guard FileManager.default.createFile(atPath: secretPath, contents: Data(pair.secretKey.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw KeyStoreError("cannot write \(secretPath)")
        }
        try Data(pair.publicKey.utf8).write(to: URL(fileURLWithPath: path(name, "pub")))
    }

    public func keyPair(of service: ServiceName) throws -> CurveKeyPair { try keyPair(named: service.rawValue) }

    public func keyPair(named name: String) throws -> CurveKeyPair {
        let secret = try read(path(name, "key"))
        guard CurveKeyPair.isValid(secret) else {
            throw KeyStoreError("\(path(name, "key")) does not hold a CURVE secret key (40 Z85 characters): `erp keys generate --replace` makes a new pair")
        }
        let pair = try CurveKeyPair(secretKey: secret)
        if let published = try? read(path(name, "pub")), published != pair.publicKey {
            throw KeyStoreError("\(path(name, "pub")) does not match \(path(name, "key"))")
        }
        return pair
    }

    public func publicKey(of service: ServiceName) throws -> String { try publicKey(named: service.rawValue) }

    /// Named by its file when it is no key: a malformed `.pub` stopped a reload (and the next
    /// restart of a service) with "a CURVE client public key is 40 Z85 characters", no file named.
    public func publicKey(named name: String) throws -> String {
        let key = try read(path(name, "pub"))
        guard CurveKeyPair.isValid(key) else {
            throw KeyStoreError("\(path(name, "pub")) does not hold a CURVE public key (40 Z85 characters)")
        }
        return key
    }

    /// Whether `name` has a public key file here (a client without one is revoked).
    public func hasPublicKey(named name: String) -> Bool { FileManager.default.fileExists(atPath: path(name, "pub")) }

    /// Whether `name` has a secret key file here (`erp up`'s check before it starts anything).
    public func hasSecretKey(named name: String) -> Bool { FileManager.default.fileExists(atPath: path(name, "key")) }

    private func path(_ name: String, _ ext: String) -> String { directory + "/" + name + "." + ext }

    private func read(_ path: String) throws -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            throw KeyStoreError("cannot read \(path): run `erp keys generate` for this topology")
        }
    }
}

public struct KeyStoreError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
