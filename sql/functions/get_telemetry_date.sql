-- cht-couch2pg's get_telemetry_date(app_version, year, month, day): the first day a telemetry doc
-- covers. Apps older than 3.8.0 counted months from 0. Returns NULL for anything that is not a
-- real date, so one odd doc cannot break a refresh.
CREATE OR REPLACE FUNCTION get_telemetry_date(app_version text, year text, month text, day text)
RETURNS date
LANGUAGE plpgsql
IMMUTABLE
-- UNSAFE, not SAFE: its EXCEPTION block needs a subtransaction, which no process of a parallel
-- query may start (the leader included: RESTRICTED is not enough).
PARALLEL UNSAFE
AS $$
DECLARE
  version_parts integer[];
  month_number integer;
BEGIN
  IF coalesce(year, '') !~ '^\d{4}$' OR coalesce(month, '') !~ '^\d{1,2}$' OR coalesce(day, '1') !~ '^\d{1,2}$' THEN
    RETURN NULL;
  END IF;
  month_number := month::integer;
  version_parts := string_to_array(substring(coalesce(app_version, '') FROM '(\d+\.\d+\.\d+)'), '.')::integer[];
  IF coalesce(day, '') = '' AND (version_parts IS NULL OR version_parts < ARRAY[3, 8, 0]) THEN
    month_number := month_number + 1;
  END IF;
  RETURN make_date(year::integer, month_number, coalesce(nullif(day, ''), '1')::integer);
EXCEPTION WHEN others THEN
  RETURN NULL;
END
$$;
