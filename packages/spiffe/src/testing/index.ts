/**
 * @steeple/spiffe/testing — test doubles for code that uses the SDK: a test CA, and a
 * clock that only moves when told to.
 * @module
 */

export {
  type FakeJwtSvid,
  type FakeJwtSvidMinter,
  type FakeJwtSvidRequest,
  type FakeWorkloadApi,
  type StartFakeWorkloadApiOptions,
  startFakeWorkloadApi,
  type WorkloadApiMethod,
} from './fake-workload-api.js';
export {
  createTestJwtAuthority,
  type JwtMintOptions,
  type TestJwtAuthority,
  type TestJwtAuthorityOptions,
} from './jwt-authority.js';
export { ManualClock } from './manual-clock.js';
export {
  type CaBreakage,
  type CreateIntermediateOptions,
  type CreateTestCaOptions,
  createTestCa,
  generateTestKey,
  type IssueX509SvidOptions,
  type TestCa,
  type TestKeyType,
  type X509Breakage,
} from './test-ca.js';
