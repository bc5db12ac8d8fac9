-- CHT stores reported_date as epoch milliseconds, usually a number, sometimes a numeric string
-- (imports). Anything else yields NULL instead of failing the refresh. Negative values have one
-- digit less so that the result stays within timestamptz's range (4713 BC).
CREATE OR REPLACE FUNCTION public.cht_epoch_ms_to_timestamptz(value text)
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN value ~ '^\s*([0-9]{1,15}|-[0-9]{1,14})(\.[0-9]+)?\s*$' THEN to_timestamp(value::numeric / 1000)
  END
$$;
