-- XForm `int` answers arrive as text ("3", "", "abc", "1e999"). Returns the whole number, or
-- NULL for anything else (out of range included), so one bad answer never fails a refresh.
CREATE OR REPLACE FUNCTION public.cht_to_integer(value text)
RETURNS integer
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
  -- Nine significant digits always fit, and skipping the exception block below skips its
  -- sub-transaction, which is what makes such blocks slow.
  IF length(ltrim(substring(value FROM '[0-9]+'), '0')) <= 9 THEN
    RETURN value::integer;
  END IF;
  BEGIN
    RETURN value::integer;
  EXCEPTION WHEN numeric_value_out_of_range THEN
    RETURN NULL;
  END;
END
$$;
