import Testing

@testable import Router

@Suite struct IPAddressTests {
    @Test(arguments: [
        ("10.1.2.3", "10.1.2.3"),
        ("::1", "::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("[fe80::1%eth0]", "fe80::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
        ("::", "::"),
    ])
    func parsesAndPrints(input: String, canonical: String) throws {
        let address = try #require(IPAddress(input))
        #expect(address.description == canonical)
    }

    @Test(arguments: ["", "1.2.3", "1.2.3.256", "01.2.3.4", "1::2::3", "12345::", "g::1", "1.2.3.4.5", "::1.2.3"])
    func rejectsGarbage(input: String) {
        #expect(IPAddress(input) == nil)
    }

    @Test func cidrMembership() throws {
        let v4 = try #require(CIDRBlock("10.0.0.0/8"))
        #expect(v4.contains(IPAddress("10.200.1.1")!))
        #expect(!v4.contains(IPAddress("11.0.0.1")!))
        #expect(v4.description == "10.0.0.0/8")
        let v6 = try #require(CIDRBlock("2001:db8::/32"))
        #expect(v6.contains(IPAddress("2001:db8:ffff::1")!))
        #expect(!v6.contains(IPAddress("2001:db9::1")!))
        // An IPv4 block never matches an unrelated IPv6 address, and a host address is a /32.
        #expect(!v4.contains(IPAddress("::a00:1")!))
        #expect(CIDRBlock("192.0.2.7")!.contains(IPAddress("192.0.2.7")!))
        #expect(CIDRBlock("192.0.2.0/33") == nil)
        #expect(CIDRBlock("0.0.0.0/0")!.contains(IPAddress("203.0.113.9")!))
    }

    @Test func tableTakesTheLongestPrefix() {
        let table = CIDRTable([(CIDRBlock("10.0.0.0/8")!, "wide"), (CIDRBlock("10.1.0.0/16")!, "narrow")])
        #expect(table.lookup(IPAddress("10.1.2.3")!) == "narrow")
        #expect(table.lookup(IPAddress("10.2.2.3")!) == "wide")
        #expect(table.lookup(IPAddress("192.0.2.1")!) == nil)
    }
}
