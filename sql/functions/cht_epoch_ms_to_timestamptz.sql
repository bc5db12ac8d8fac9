-- CHT stores reported_date as epoch milliseconds, usually a number, sometimes a numeric string
-- (imports). Anything else yields NULL instead of failing the refresh.
CREATE OR REPLACE FUNCTION cht_epoch_ms_to_timestamptz(value text)
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN value ~ '^\s*-?\d{1,15}(\.\d+)?\s*$' THEN to_timestamp(value::numeric / 1000)
  END
$$;
