/**
 * Bundles for people: PEM of the X.509 authorities (`-format pem`, SPIRE's default) or the
 * SPIFFE bundle JSON document (`-format spiffe`).
 * @module
 */
import { SpiffeBundle, X509Bundle } from '@steeple/spiffe';
import type { Bundle } from '../gen/steeple/types/v1/bundle_pb.js';
import { CliError } from './admin-command.js';

export const BUNDLE_FORMATS = ['pem', 'spiffe'] as const;
export type BundleFormat = (typeof BUNDLE_FORMATS)[number];

export function formatBundle(bundle: Bundle, format: BundleFormat): string {
  if (format === 'spiffe') return JSON.stringify(JSON.parse(bundle.spiffeBundleJson), null, 4);
  return SpiffeBundle.parse(bundle.trustDomain, bundle.spiffeBundleJson).x509Bundle().marshal();
}

/**
 * A bundle file given with `-format` as SPIFFE bundle JSON text. PEM is converted here, so the
 * server checks one format; errors name the file and what is wrong with it.
 */
export function bundleJsonFromFile(trustDomain: string, path: string, format: BundleFormat, text: string): string {
  try {
    if (format === 'spiffe') return SpiffeBundle.parse(trustDomain, text).marshal();
    return SpiffeBundle.fromBundles({ x509: X509Bundle.parse(trustDomain, text) }).marshal();
  } catch (err) {
    throw new CliError(`${path}: ${(err as Error).message}`);
  }
}
