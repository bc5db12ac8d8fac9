-- XForm `long` answers arrive as text. Returns the whole number, or NULL for anything else
-- (out of range included), so one bad answer never fails a refresh.
CREATE OR REPLACE FUNCTION public.cht_to_bigint(value text)
RETURNS bigint
LANGUAGE plpgsql
IMMUTABLE
STRICT
-- UNSAFE, not SAFE: its EXCEPTION block needs a subtransaction, which no process of a parallel
-- query may start (the leader included: RESTRICTED is not enough).
PARALLEL UNSAFE
AS $$
BEGIN
  -- Decimal digits only: PostgreSQL 16+ would also take '0x1F' or '1_000', 15 would not.
  IF value !~ '^\s*[+-]?[0-9]+\s*$' THEN
    RETURN NULL;
  END IF;
  -- Eighteen significant digits always fit: no exception block (and its sub-transaction).
  IF length(ltrim(substring(value FROM '[0-9]+'), '0')) <= 18 THEN
    RETURN value::bigint;
  END IF;
  BEGIN
    RETURN value::bigint;
  EXCEPTION WHEN numeric_value_out_of_range THEN
    RETURN NULL;
  END;
END
$$;
