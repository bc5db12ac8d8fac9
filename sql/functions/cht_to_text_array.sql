-- XForm `select` (multiple choice) answers arrive as one space-separated string
-- ("cholera polio vitamin_a"). Returns the choices as an array; NULL for a blank answer.
CREATE OR REPLACE FUNCTION public.cht_to_text_array(value text)
RETURNS text[]
LANGUAGE sql
IMMUTABLE
STRICT
PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN value ~ '\S' THEN regexp_split_to_array(regexp_replace(value, '^\s+|\s+$', '', 'g'), '\s+')
  END
$$;
