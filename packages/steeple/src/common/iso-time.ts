/**
 * `Date.prototype.toISOString` without the `Date`: the same text, from arithmetic.
 *
 * V8's `toISOString` initialises ICU's time-zone data on first use, even though the ISO
 * form is UTC. In a daemon that formats times all day (the proxy's audit log, every log
 * line) that maps ≈600 KiB of ICU tables into the process that nothing else needs; the
 * arithmetic below maps nothing. Years 0–9999 only (what a clock reads); other times go
 * to `toISOString`, which writes them with a sign and six digits.
 * @module
 */

const TWO_DIGITS: readonly string[] = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0'));
const MS_PER_DAY = 86_400_000;
/** 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z in ms since the epoch. */
const MIN_MS = -62_167_219_200_000;
const MAX_MS = 253_402_300_799_999;

/** `new Date(ms).toISOString()` for a whole number of milliseconds in years 0–9999. */
export function isoTime(ms: number): string {
  if (!Number.isInteger(ms) || ms < MIN_MS || ms > MAX_MS) return new Date(ms).toISOString();
  const days = Math.floor(ms / MS_PER_DAY);
  let rest = ms - days * MS_PER_DAY;
  const hour = Math.floor(rest / 3_600_000);
  rest -= hour * 3_600_000;
  const minute = Math.floor(rest / 60_000);
  rest -= minute * 60_000;
  const second = Math.floor(rest / 1000);
  const milli = rest - second * 1000;
  // The civil date of a day count (days since 1970-01-01), in eras of 400 years that
  // start on 1 March, so the leap day is the last day of its year.
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const mp = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
  const y = year < 1000 ? String(year).padStart(4, '0') : String(year);
  const msText = milli < 10 ? `00${milli}` : milli < 100 ? `0${milli}` : String(milli);
  return `${y}-${TWO_DIGITS[month]}-${TWO_DIGITS[day]}T${TWO_DIGITS[hour]}:${TWO_DIGITS[minute]}:${TWO_DIGITS[second]}.${msText}Z`;
}
