-- XForm `dateTime` answers arrive as ISO 8601 text ("2024-04-26T10:11:12.000+03:00"). Returns
-- the instant, or NULL for anything else. A value without an offset is read as UTC rather than
-- in the session's TimeZone, so a view means the same thing for every reader.
CREATE OR REPLACE FUNCTION public.cht_to_timestamptz(value text)
RETURNS timestamptz
LANGUAGE plpgsql
STABLE
STRICT
-- UNSAFE, not SAFE: its EXCEPTION block needs a subtransaction, which no process of a parallel
-- query may start (the leader included: RESTRICTED is not enough).
PARALLEL UNSAFE
AS $$
DECLARE
  parts text[];
  local_time text;
BEGIN
  parts := regexp_match(
    value,
    '^\s*([0-9]{4}-[0-9]{1,2}-[0-9]{1,2})(?:[T ]([0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?))?'
    '\s*([Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?\s*$'
  );
  IF parts IS NULL THEN
    RETURN NULL;
  END IF;
  local_time := parts[1] || ' ' || coalesce(parts[2], '00:00');
  BEGIN
    IF parts[3] IS NULL THEN
      RETURN local_time::timestamp AT TIME ZONE 'UTC';
    END IF;
    RETURN (local_time || upper(parts[3]))::timestamptz;
  EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format OR invalid_time_zone_displacement_value THEN
    RETURN NULL;
  END;
END
$$;
