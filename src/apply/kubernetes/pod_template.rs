//! Pod template layering, as the operator does it.
//!
//! Mirrors `FlinkUtils.mergePodTemplates` of the Flink Kubernetes Operator, which
//! `FlinkConfigBuilder.applyPodTemplate` calls with the common `spec.podTemplate` as the
//! base and the role's (`jobManager.podTemplate` / `taskManager.podTemplate`) on top:
//!
//! * objects merge field by field, recursively; the role's scalar wins;
//! * arrays merge **by index** (element `i` of the role's template merged into element `i`
//!   of the base, extra elements appended), or **by `name`** when
//!   `kubernetes.operator.pod-template.merge-arrays-by-name` is true and every element of
//!   both arrays has a `name` (matching names merged, new names appended in order);
//! * a field that is an object in the base is merged into, never replaced, even by a scalar
//!   or `null` on top (the operator's Jackson walk does the same);
//! * a scalar merged into a scalar array element keeps the base's element.
//!
//! Templates are compared after the operator's own model would have dropped `null` fields
//! (fabric8's classes serialise without nulls), so `null`s are removed first.

use serde_json::{Map, Value};

/// The role's template merged over the base: see the module docs. `None` when neither is
/// given.
pub fn merge_pod_templates(
    base: Option<&Value>,
    role: Option<&Value>,
    merge_arrays_by_name: bool,
) -> Option<Value> {
    match (base.map(without_nulls), role.map(without_nulls)) {
        (None, None) => None,
        (Some(b), None) => Some(b),
        (None, Some(r)) => Some(r),
        (Some(mut b), Some(r)) => {
            merge_into(&mut b, &r, merge_arrays_by_name);
            Some(b)
        }
    }
}

/// A copy without `null` members of objects (recursively).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn merge_into(to: &mut Value, from: &Value, by_name: bool) {
    // Only an object has fields to merge; anything else merged into anything leaves `to`
    // as it is (a scalar array element keeps the base's value).
    let Value::Object(from_fields) = from else {
        return;
    };
    let Value::Object(to_fields) = to else {
        return;
    };
    for (name, from_child) in from_fields {
        match to_fields.get_mut(name) {
            Some(Value::Array(to_items)) if from_child.is_array() => {
                if let Value::Array(from_items) = from_child {
                    merge_array(to_items, from_items, by_name);
                }
            }
            Some(to_child @ Value::Object(_)) => merge_into(to_child, from_child, by_name),
            _ => {
                to_fields.insert(name.clone(), from_child.clone());
            }
        }
    }
}

fn merge_array(to: &mut Vec<Value>, from: &[Value], by_name: bool) {
    if by_name && all_named(to) && all_named(from) {
        let mut merged: Vec<Value> = std::mem::take(to);
        for item in from {
            let name = item.get("name");
            match merged.iter_mut().find(|m| m.get("name") == name) {
                Some(existing) => merge_into(existing, item, by_name),
                None => merged.push(item.clone()),
            }
        }
        *to = merged;
    } else {
        for (i, item) in from.iter().enumerate() {
            if i >= to.len() {
                to.push(item.clone());
            } else {
                merge_into(&mut to[i], item, by_name);
            }
        }
    }
}

fn all_named(items: &[Value]) -> bool {
    items
        .iter()
        .all(|i| i.as_object().is_some_and(|o| o.contains_key("name")))
}

/// An empty JSON object, for a role without a template.
pub fn empty() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn role_scalars_win_and_objects_merge() {
        let base =
            json!({"metadata": {"labels": {"a": "1", "b": "1"}}, "spec": {"hostNetwork": false}});
        let role = json!({"metadata": {"labels": {"b": "2"}}, "spec": {"hostNetwork": true}});
        let m = merge_pod_templates(Some(&base), Some(&role), false).unwrap();
        assert_eq!(
            m,
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"hostNetwork": true}})
        );
    }

    #[test]
    fn arrays_merge_by_index_by_default() {
        let base = json!({"spec": {"containers": [{"name": "flink-main-container", "env": [{"name": "A", "value": "1"}]}, {"name": "sidecar", "image": "s:1"}]}});
        let role = json!({"spec": {"containers": [{"name": "other", "image": "o:1"}]}});
        let m = merge_pod_templates(Some(&base), Some(&role), false).unwrap();
        // Element 0 is merged with the role's element 0, whatever its name: the operator's default.
        assert_eq!(
            m["spec"]["containers"],
            json!([{"name": "other", "image": "o:1", "env": [{"name": "A", "value": "1"}]}, {"name": "sidecar", "image": "s:1"}])
        );
    }

    #[test]
    fn arrays_merge_by_name_when_asked() {
        let base = json!({"spec": {"containers": [{"name": "flink-main-container", "env": [{"name": "A", "value": "1"}]}, {"name": "sidecar", "image": "s:1"}]}});
        let role = json!({"spec": {"containers": [{"name": "sidecar", "image": "s:2"}, {"name": "flink-main-container", "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]}, {"name": "more"}]}});
        let m = merge_pod_templates(Some(&base), Some(&role), true).unwrap();
        assert_eq!(
            m["spec"]["containers"],
            json!([
                {"name": "flink-main-container", "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]},
                {"name": "sidecar", "image": "s:2"},
                {"name": "more"}
            ])
        );
    }

    #[test]
    fn by_name_falls_back_to_index_when_an_element_has_no_name() {
        let base = json!({"spec": {"tolerations": [{"key": "a"}]}});
        let role = json!({"spec": {"tolerations": [{"key": "b"}, {"key": "c"}]}});
        let m = merge_pod_templates(Some(&base), Some(&role), true).unwrap();
        assert_eq!(
            m["spec"]["tolerations"],
            json!([{"key": "b"}, {"key": "c"}])
        );
    }

    #[test]
    fn scalar_array_elements_keep_the_base_and_objects_are_not_replaced() {
        let base = json!({"spec": {"containers": [{"name": "c", "args": ["a", "b"]}], "securityContext": {"runAsUser": 1}}});
        let role =
            json!({"spec": {"containers": [{"args": ["x", "y", "z"]}], "securityContext": null}});
        let m = merge_pod_templates(Some(&base), Some(&role), false).unwrap();
        assert_eq!(m["spec"]["containers"][0]["args"], json!(["a", "b", "z"]));
        assert_eq!(m["spec"]["securityContext"], json!({"runAsUser": 1}));
    }

    #[test]
    fn one_side_missing() {
        let t = json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}});
        assert_eq!(merge_pod_templates(None, Some(&t), false), Some(t.clone()));
        assert_eq!(merge_pod_templates(Some(&t), None, false), Some(t.clone()));
        assert_eq!(merge_pod_templates(None, None, false), None);
    }
}
