-- XForm `geopoint` answers arrive as "latitude longitude [altitude [accuracy]]". Returns the
-- latitude, or NULL when the value is not such a point or the latitude is not within +-90.
-- Self-contained (no call to cht_to_numeric), so it can be created and used on its own.
CREATE OR REPLACE FUNCTION public.cht_geopoint_latitude(value text)
RETURNS numeric
LANGUAGE plpgsql
IMMUTABLE
STRICT
PARALLEL SAFE
AS $$
DECLARE
  parts text[];
  coordinate numeric;
BEGIN
  parts := regexp_match(
    value,
    '^\s*([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))\s+([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))(?:\s+\S+){0,2}\s*$'
  );
  -- A plain decimal of at most 100 characters always casts: no exception block needed.
  IF parts IS NULL OR length(parts[1]) > 100 THEN
    RETURN NULL;
  END IF;
  coordinate := parts[1]::numeric;
  RETURN CASE WHEN coordinate BETWEEN -90 AND 90 THEN coordinate END;
END
$$;
