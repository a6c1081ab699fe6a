const PATH_SEGMENT_CHAR = /^[A-Za-z0-9._-]*$/;

/** Returns the rule a SPIFFE ID path breaks, or undefined when it is valid ('' is a valid, empty path). */
export function brokenPathRule(path: string): string | undefined {
  if (path === '') return undefined;
  if (!path.startsWith('/')) return 'path must start with "/"';
  const segments = path.slice(1).split('/');
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string;
    if (segment === '') {
      return i === segments.length - 1 ? 'path cannot have a trailing slash' : 'path cannot contain empty segments';
    }
    if (segment === '.' || segment === '..') return 'path cannot contain dot segments';
    if (!PATH_SEGMENT_CHAR.test(segment)) {
      return 'path segment characters are limited to letters, numbers, dots, dashes, and underscores';
    }
  }
  return undefined;
}
