-- A repeat group's value in `fields`: normally an array of objects, but a single object in
-- reports from old clients, and absent when the group was not relevant. Always an array, so
-- jsonb_array_elements can unnest it (an object becomes a one-element array, anything else
-- an empty one).
CREATE OR REPLACE FUNCTION public.cht_as_jsonb_array(value jsonb)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
  SELECT CASE jsonb_typeof(value)
    WHEN 'array' THEN value
    WHEN 'object' THEN jsonb_build_array(value)
    ELSE '[]'::jsonb
  END
$$;
