import FerryGRPC
import XCTest

final class GRPCPathTests: XCTestCase {
    func testSplitsServiceAndMethod() throws {
        let path = try XCTUnwrap(GRPCPath("/helloworld.Greeter/SayHello"))
        XCTAssertEqual(path.service, "helloworld.Greeter")
        XCTAssertEqual(path.method, "SayHello")
        XCTAssertEqual(path.path, "/helloworld.Greeter/SayHello")
        XCTAssertEqual(GRPCPath("/Svc/M")?.service, "Svc")
    }

    func testAnythingElseIsNotGRPC() {
        for bad in ["", "/", "//", "/svc", "/svc/", "//method", "svc/method", "/a/b/c", "/a/b?x=1", "/a/b#f",
                    "/a b/c", "/a/b\u{7f}"] {
            XCTAssertNil(GRPCPath(bad), bad)
        }
    }
}
