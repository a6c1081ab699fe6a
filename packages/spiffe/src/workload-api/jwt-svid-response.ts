/**
 * Decoding FetchJWTSVID and ValidateJWTSVID responses (W-9, W-11).
 * @module
 */
import type { Clock } from '../clock.js';
import { quote } from '../errors.js';
import type { JWTSVIDResponse, ValidateJWTSVIDResponse } from '../gen/spiffe/workload/workload_pb.js';
import { JwtSvid } from '../svid/jwt-svid.js';
import { badResponse, located } from './response-errors.js';

/**
 * The JWT-SVIDs of a FetchJWTSVID response, in order (the first is for the default
 * identity). Tokens come from the trusted local endpoint, so their signatures are not
 * checked here (go-spiffe's ParseInsecure), but every other JWT-SVID rule is, including
 * the audience.
 */
export function jwtSvidsFromResponse(res: JWTSVIDResponse, audience: readonly string[], clock: Clock): JwtSvid[] {
  if (res.svids.length === 0) throw badResponse('JWTSVIDResponse holds no SVIDs; at least one is required (W-9)');
  const hints = new Set<string>();
  const out: JwtSvid[] = [];
  res.svids.forEach((s, i) => {
    if (s.hint !== '') {
      if (hints.has(s.hint)) return;
      hints.add(s.hint);
    }
    const where = `svids[${i}]`;
    if (s.spiffeId === '') throw badResponse(`${where}.spiffe_id is empty (W-5, W-9)`);
    let svid: JwtSvid;
    try {
      svid = JwtSvid.parseInsecure(s.svid, audience, s.hint === '' ? { clock } : { clock, hint: s.hint });
    } catch (err) {
      throw located(`${where} (${quote(s.spiffeId)})`, err);
    }
    if (svid.id.toString() !== s.spiffeId) {
      throw badResponse(`${where}.spiffe_id ${quote(s.spiffeId)} differs from the token's subject "${svid.id}"`);
    }
    out.push(svid);
  });
  return out;
}

/** The token that ValidateJWTSVID accepted, parsed (its `sub` must be the returned `spiffe_id`). */
export function validatedJwtSvid(res: ValidateJWTSVIDResponse, token: string, audience: string, clock: Clock): JwtSvid {
  if (res.spiffeId === '') throw badResponse('ValidateJWTSVIDResponse.spiffe_id is empty (W-11)');
  let svid: JwtSvid;
  try {
    svid = JwtSvid.parseInsecure(token, [audience], { clock });
  } catch (err) {
    throw located('ValidateJWTSVID (the token the endpoint accepted)', err);
  }
  if (svid.id.toString() !== res.spiffeId) {
    throw badResponse(
      `ValidateJWTSVIDResponse.spiffe_id ${quote(res.spiffeId)} differs from the token's subject "${svid.id}"`,
    );
  }
  return svid;
}
