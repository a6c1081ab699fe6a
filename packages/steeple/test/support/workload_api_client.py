#!/usr/bin/python3
"""An independent SPIFFE Workload API client: Debian's python3-grpcio (gRPC C-core), with
stubs generated at run time from the standard proto. It shares no code with Steeple, so the
agent's answers are checked by someone else's gRPC and protobuf stack.

Usage:
  workload_api_client.py --proto-dir DIR --socket PATH --audience AUD [--expect ok|permission-denied]
                         [--authority AUTH]

Prints one JSON object with what it saw and exits 0 when everything was as expected.
"""
import argparse
import json
import os
import sys
import tempfile


def generate_stubs(proto_dir: str) -> str:
    from grpc_tools import protoc
    import grpc_tools

    out = tempfile.mkdtemp(prefix="workload-stubs-")
    wkt = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    code = protoc.main([
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"-I{wkt}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        os.path.join(proto_dir, "workload.proto"),
    ])
    if code != 0:
        raise SystemExit(f"protoc failed with {code}")
    sys.path.insert(0, out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--proto-dir", required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--audience", default="python-e2e")
    parser.add_argument("--expect", default="ok", choices=["ok", "permission-denied"])
    parser.add_argument("--authority", default=None, help="override :authority (e.g. the %%-encoded socket path newer C-core sends)")
    args = parser.parse_args()

    generate_stubs(args.proto_dir)
    import grpc
    import workload_pb2
    import workload_pb2_grpc

    options = []
    if args.authority is not None:
        options.append(("grpc.default_authority", args.authority))
    channel = grpc.insecure_channel(f"unix:{args.socket}", options=options)
    stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)
    header = [("workload.spiffe.io", "true")]
    report = {"grpc_version": grpc.__version__}

    # Without the security header every call is refused with INVALID_ARGUMENT (E-2).
    try:
        next(stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), timeout=10))
        report["no_header"] = "OK"
    except grpc.RpcError as err:
        report["no_header"] = err.code().name

    try:
        x509 = next(stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=header, timeout=10))
    except grpc.RpcError as err:
        report["x509"] = err.code().name
        print(json.dumps(report))
        expected = args.expect == "permission-denied" and err.code() == grpc.StatusCode.PERMISSION_DENIED
        return 0 if expected and report["no_header"] == "INVALID_ARGUMENT" else 1

    svid = x509.svids[0]
    report["x509"] = {
        "spiffe_id": svid.spiffe_id,
        "chain_is_der": svid.x509_svid[:1] == b"\x30",
        "key_is_der": svid.x509_svid_key[:1] == b"\x30",
        "bundle_is_der": svid.bundle[:1] == b"\x30",
        "svids": len(x509.svids),
    }

    bundles = next(stub.FetchJWTBundles(workload_pb2.JWTBundlesRequest(), metadata=header, timeout=10))
    report["jwt_bundles"] = {td: [k.get("use") for k in json.loads(jwks)["keys"]] for td, jwks in bundles.bundles.items()}

    jwt = stub.FetchJWTSVID(workload_pb2.JWTSVIDRequest(audience=[args.audience]), metadata=header, timeout=10)
    token = jwt.svids[0].svid
    report["jwt"] = {"spiffe_id": jwt.svids[0].spiffe_id, "parts": len(token.split("."))}

    valid = stub.ValidateJWTSVID(
        workload_pb2.ValidateJWTSVIDRequest(audience=args.audience, svid=token), metadata=header, timeout=10
    )
    claims = json.loads(json.dumps(dict(valid.claims), default=list))
    report["validate"] = {"spiffe_id": valid.spiffe_id, "sub": claims.get("sub"), "aud": list(valid.claims["aud"])}

    try:
        stub.ValidateJWTSVID(
            workload_pb2.ValidateJWTSVIDRequest(audience="someone-else", svid=token), metadata=header, timeout=10
        )
        report["validate_wrong_audience"] = "OK"
    except grpc.RpcError as err:
        report["validate_wrong_audience"] = err.code().name

    print(json.dumps(report))
    ok = (
        args.expect == "ok"
        and report["no_header"] == "INVALID_ARGUMENT"
        and report["x509"]["chain_is_der"]
        and report["validate"]["spiffe_id"] == svid.spiffe_id
        and report["validate_wrong_audience"] == "INVALID_ARGUMENT"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
