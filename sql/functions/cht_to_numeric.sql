-- XForm `decimal` answers and JSON numbers arrive as text ("36.5", "", "abc", "1.5e-7").
-- Returns the number, or NULL for anything else: no NaN or Infinity, and no exponent beyond a
-- double's range ("1e999"), which no form or JavaScript client produces.
CREATE OR REPLACE FUNCTION public.cht_to_numeric(value text)
RETURNS numeric
LANGUAGE plpgsql
IMMUTABLE
STRICT
-- UNSAFE, not SAFE: its EXCEPTION block needs a subtransaction, which no process of a parallel
-- query may start (the leader included: RESTRICTED is not enough).
PARALLEL UNSAFE
AS $$
DECLARE
  parts text[];
BEGIN
  parts := regexp_match(value, '^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\s*$');
  IF parts IS NULL THEN
    RETURN NULL;
  END IF;
  IF parts[2] IS NOT NULL AND abs(parts[2]::numeric) > 308 THEN
    RETURN NULL;
  END IF;
  -- A well-formed number this short always fits numeric: no exception block needed.
  IF length(value) <= 1000 THEN
    RETURN value::numeric;
  END IF;
  BEGIN
    RETURN value::numeric;
  EXCEPTION WHEN numeric_value_out_of_range OR invalid_text_representation OR program_limit_exceeded THEN
    RETURN NULL;
  END;
END
$$;
