-- XForm `date` answers arrive as text: "2024-01-05", sometimes a full timestamp such as
-- "2024-04-26T00:00:00.000-00:00" (its date part, as written, is the date). Returns NULL for
-- anything else ("", "yesterday", "2026-13-45", "undefined") instead of failing the refresh.
-- Independent of DateStyle and TimeZone.
CREATE OR REPLACE FUNCTION public.cht_to_date(value text)
RETURNS date
LANGUAGE plpgsql
IMMUTABLE
STRICT
-- UNSAFE, not SAFE: its EXCEPTION block needs a subtransaction, which no process of a parallel
-- query may start (the leader included: RESTRICTED is not enough).
PARALLEL UNSAFE
AS $$
DECLARE
  parts text[];
  y integer;
  m integer;
  d integer;
BEGIN
  parts := regexp_match(
    value,
    '^\s*([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})'
    '(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]+)?)?\s*(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?)?\s*$'
  );
  IF parts IS NULL THEN
    RETURN NULL;
  END IF;
  y := parts[1]::integer;
  m := parts[2]::integer;
  d := parts[3]::integer;
  IF y < 1 OR m NOT BETWEEN 1 AND 12 OR d NOT BETWEEN 1 AND 31 THEN
    RETURN NULL;
  END IF;
  -- Days 1-28 exist in every month: no exception block (and its sub-transaction) needed.
  IF d <= 28 THEN
    RETURN make_date(y, m, d);
  END IF;
  BEGIN
    RETURN make_date(y, m, d);
  EXCEPTION WHEN datetime_field_overflow THEN
    RETURN NULL;
  END;
END
$$;
