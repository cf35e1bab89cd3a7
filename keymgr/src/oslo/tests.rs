use super::*;
use keymgr_core::ErrorKind;

/// An excerpt of a real deployment's cinder.conf, in its shape.
const CINDER_CONF: &str = r#"[DEFAULT]
# Cinder's own options: ignored.
debug = True
transport_url = rabbit://openstack:$RABBIT_PASS@controller
enabled_backends = lvm
glance_api_servers = http://controller:9292
my_ip = 10.0.0.11
auth_strategy = keystone

[database]
connection = mysql+pymysql://cinder:secret@controller/cinder

[keystone_authtoken]
www_authenticate_uri = http://controller:5000
auth_url = http://controller:5000
memcached_servers = controller:11211
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = cinder
password = CINDER_PASS

[key_manager]
backend = barbican
fixed_key = 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
auth_type = keystone_password
auth_url = http://controller:5000/v3
username = cinder
password = "pa:ss=word"
user_domain_name = Default
project_name = service
project_domain_name = Default

[barbican]
barbican_endpoint_type = internal
barbican_region_name = RegionOne
number_of_retries = 20
retry_delay = 2
verify_ssl = false
send_service_user_token = True

[barbican_service_user]
auth_type = password
auth_url = http://controller:5000/
username = nova
password = NOVA_PASS
project_name = service
default_domain_name = Default

[vault]
vault_url = http://127.0.0.1:8200
root_token_id = s.notused
kv_version = 2
"#;

#[test]
fn cinder_conf_maps_onto_the_barbican_config() {
    let c = config_from_ini(CINDER_CONF).unwrap();
    assert_eq!(c.backend, BackendKind::Barbican);
    assert_eq!(c.fixed_key.as_ref().unwrap().len(), 32);
    let s = &c.section;
    let str_of = |k: &str| s.get(k).and_then(|v| v.as_str()).map(str::to_string);
    assert_eq!(
        str_of("auth_endpoint").as_deref(),
        Some("http://controller:5000/v3")
    );
    assert_eq!(str_of("auth_type").as_deref(), Some("password"));
    assert_eq!(str_of("password").as_deref(), Some("pa:ss=word"));
    assert_eq!(
        str_of("barbican_endpoint_type").as_deref(),
        Some("internal")
    );
    assert_eq!(s["number_of_retries"].as_integer(), Some(20));
    assert_eq!(s["retry_delay"].as_float(), Some(2.0));
    assert_eq!(s["verify_ssl"].as_bool(), Some(false));
    assert_eq!(str_of("service_username").as_deref(), Some("nova"));
    assert_eq!(
        str_of("service_user_domain_name").as_deref(),
        Some("Default")
    );
    assert_eq!(
        str_of("service_project_domain_name").as_deref(),
        Some("Default")
    );
    // Nothing of [DEFAULT], [database], [keystone_authtoken] or [vault].
    for k in [
        "debug",
        "connection",
        "memcached_servers",
        "vault_url",
        "root_token_id",
    ] {
        assert!(!s.contains_key(k), "{k}");
    }
    #[cfg(feature = "barbican")]
    {
        let b: keymgr_barbican::BarbicanConfig = c.section_as().unwrap();
        b.validate().unwrap();
        assert!(b.has_service_credentials());
        assert!(!b.verify_ssl);
    }
    let d = format!("{c:?}");
    assert!(
        !d.contains("pa:ss") && !d.contains("NOVA_PASS") && !d.contains("0a0b"),
        "{d}"
    );
}

#[test]
fn vault_backend_by_class_path_or_old_api_class() {
    for km in [
        "backend = vault",
        "backend = castellan.key_manager.vault_key_manager.VaultKeyManager",
        "api_class = castellan.key_manager.vault_key_manager.VaultKeyManager",
        "backend: Vault",
    ] {
        let text = format!(
            "[DEFAULT]\nfoo = bar\n[key_manager]\n{km}\n[vault]\nvault_url = http://127.0.0.1:8200\nroot_token_id = 's.tok'\nkv_mountpoint = secret\nkv_version = 1\nuse_ssl = no\ntimeout = 7.5\nnamespace = team\n[barbican]\nbarbican_endpoint = http://b:9311\n"
        );
        let c = config_from_ini(&text).unwrap();
        assert_eq!(c.backend, BackendKind::Vault, "{km}");
        assert_eq!(c.section["root_token_id"].as_str(), Some("s.tok"));
        assert_eq!(c.section["kv_version"].as_integer(), Some(1));
        assert_eq!(c.section["use_ssl"].as_bool(), Some(false));
        assert_eq!(c.section["timeout"].as_float(), Some(7.5));
        assert!(!c.section.contains_key("barbican_endpoint"));
        #[cfg(feature = "vault")]
        {
            let v: keymgr_vault::VaultConfig = c.section_as().unwrap();
            v.validate().unwrap();
            assert_eq!(v.namespace.as_deref(), Some("team"));
        }
    }
}

#[test]
fn castellans_default_backend_is_barbican() {
    let c =
        config_from_ini("[key_manager]\n[barbican]\nauth_endpoint = http://k:5000/v3\n").unwrap();
    assert_eq!(c.backend, BackendKind::Barbican);
    assert_eq!(
        c.section["auth_endpoint"].as_str(),
        Some("http://k:5000/v3")
    );
}

#[test]
fn key_manager_errors_name_section_and_option() {
    for (text, needle) in [
        ("[DEFAULT]\ndebug = true\n", "no [key_manager] section"),
        ("[key_manager]\nbackend = kmip\n", "kmip is not a Castellan backend"),
        ("[key_manager]\nbackend = cinder.keymgr.conf_key_mgr.ConfKeyManager\n", "fixed_key"),
        ("[key_manager]\nbackend = embedded\n", "not a Castellan backend"),
        ("[key_manager]\nbackend = vault\napi_class = barbican\n", "disagree"),
        ("[key_manager]\nbakend = vault\n", "[key_manager] bakend"),
        ("[key_manager]\nbackend = vault\n[vault]\nvault_uri = http://x\n", "[vault] vault_uri"),
        ("[key_manager]\n[barbican]\nnumber_of_retries = many\n", "[barbican] number_of_retries: line 3: expected an integer"),
        ("[key_manager]\n[barbican]\nverify_ssl = maybe\n", "[barbican] verify_ssl"),
        ("[key_manager]\nbackend = vault\n[vault]\nkv_version = two\n", "[vault] kv_version"),
        ("[key_manager]\nfixed_key = xyz\n", "fixed_key"),
        ("[key_manager]\ntrust_id = t\n", "trust scope"),
        ("[key_manager]\ndomain_id = d\n", "[key_manager] domain_id: domain scope"),
        ("[key_manager]\n[barbican_service_user]\ndomain_name = d\n", "[barbican_service_user] domain_name: domain scope"),
        ("[key_manager]\n[barbican_service_user]\ntrust_id = t\n", "[barbican_service_user] trust_id: trust scope"),
        ("[key_manager]\n[barbican]\ntrust_id = t\n", "[barbican] trust_id: line 3: not an option"),
        ("[key_manager]\nauth_type = v3oidc\n", "[key_manager] auth_type"),
        ("[key_manager]\npassword = pa$word\n", "[key_manager] password: line 2: oslo.config would substitute"),
        ("[key_manager]\n[barbican]\nsend_service_user_token = true\n", "configures no service user"),
        ("[key_manager]\n[barbican]\nauth_endpoint = http://a/v3\nsend_service_user_token = true\n[barbican_service_user]\nauth_url = http://b/v3\nusername = n\n", "same Keystone"),
        ("[key_manager]\n[barbican]\nsend_service_user_token = true\n[barbican_service_user]\nauth_type = v3applicationcredential\n", "only password"),
        ("[key_manager]\n[barbican_service_user]\nauth_section = x\n", "auth_section"),
        ("[key_manager]\n[barbican_service_user]\nbogus = x\n", "[barbican_service_user] bogus"),
        ("[key_manager\n", "line 1: a section header must end with ]"),
        ("backend = vault\n", "line 1: an option before any [section] header"),
        ("[key_manager]\n  continued\n", "line 2: a continuation line"),
        ("[key_manager]\nno separator\n", "line 2: no '=' or ':'"),
        ("[key_manager]\n= x\n", "line 2: an empty option name"),
        ("[]\n", "line 1: an empty section name"),
    ] {
        let e = config_from_ini(text).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{text}");
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
    }
    // Errors never repeat a secret value.
    let e = config_from_ini("[key_manager]\npassword = s3cr$t\n").unwrap_err();
    assert!(!e.to_string().contains("s3cr"), "{e}");
    let e = config_from_ini("[key_manager]\nfixed_key = 00112233445566778899aabbccddeefg\n")
        .unwrap_err();
    assert!(!e.to_string().contains("8899"), "{e}");
}

#[test]
fn oslo_syntax() {
    let ini = IniFile::parse(
        "\u{feff}# comment\n; another\n[DEFAULT]\na = 1\n[Key_Manager]\nx: y = z\ny = \"quoted\"\nz = 'single\"\nm = first\n  second\n\tthird\n\nn = \"\"\nx = later\n[key_manager]\nw=v\n[ DEFAULT]\n",
    )
    .unwrap();
    let get = |s: &str, k: &str| ini.get(s, k).map(|v| v.value.as_str());
    assert_eq!(get("DEFAULT", "a"), Some("1"));
    assert_eq!(
        get("key_manager", "x"),
        Some("later"),
        "the last value wins"
    );
    assert_eq!(get("KEY_MANAGER", "y"), Some("quoted"));
    assert_eq!(get("key_manager", "z"), Some("'single\""));
    assert_eq!(get("key_manager", "m"), Some("first\nsecond\nthird"));
    assert_eq!(get("key_manager", "n"), Some(""));
    assert_eq!(
        get("key_manager", "w"),
        Some("v"),
        "sections of one name merge"
    );
    assert_eq!(
        get("key_manager", "a"),
        None,
        "no [DEFAULT] fallback, as oslo.config"
    );
    assert_eq!(ini.get("key_manager", "m").unwrap().line, 9);
    assert!(ini.has_section(" default"));
    assert!(!ini.has_section("default"));
    // "x: y = z" splits at the first separator.
    let ini = IniFile::parse("[s]\nx: y = z\n").unwrap();
    assert_eq!(ini.get("s", "x").unwrap().value, "y = z");
    let ini = IniFile::parse("[s]\nurl = http://h:1/x\n").unwrap();
    assert_eq!(ini.get("s", "url").unwrap().value, "http://h:1/x");
    let d = format!("{:?}", IniFile::parse("[s]\npassword = hunter2\n").unwrap());
    assert!(d.contains("password") && !d.contains("hunter2"), "{d}");
    assert!(IniFile::parse("").unwrap().section_names().next().is_none());
}

#[test]
fn dollar_escape_and_session_options() {
    let c = config_from_ini(
        "[key_manager]\npassword = pa$$word\n[barbican]\ncafile = /etc/ssl/ca.pem\ninsecure = false\ntimeout = 30\n",
    )
    .unwrap();
    assert_eq!(c.section["password"].as_str(), Some("pa$word"));
    assert_eq!(c.section["timeout"].as_float(), Some(30.0));
    assert!(!c.section.contains_key("cafile"));
    let c =
        config_from_ini("[key_manager]\n[barbican]\nverify_ssl = off\nverify_ssl_path = /ca.pem\n")
            .unwrap();
    assert!(!c.section.contains_key("verify_ssl_path"));
    let c = config_from_ini("[key_manager]\n[barbican]\nverify_ssl_path = /ca.pem\n").unwrap();
    assert_eq!(c.section["verify_ssl_path"].as_str(), Some("/ca.pem"));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn ini_like() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            "\\[[a-zA-Z_ ]{0,12}\\]?",
            "[a-z_]{0,10} ?[=:] ?[ -~]{0,20}",
            "[ \t][ -~]{0,10}",
            "[#;][ -~]{0,10}",
            "(backend|fixed_key|vault_url|kv_version|verify_ssl|auth_type) = [ -~]{0,16}",
            "\\[(key_manager|barbican|vault|barbican_service_user|DEFAULT)\\]",
            Just(String::new()),
            ".{0,12}",
        ];
        proptest::collection::vec(line, 0..24).prop_map(|l| l.join("\n"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn never_panics_on_any_text(text in ini_like()) {
            let _ = IniFile::parse(&text);
            let _ = config_from_ini(&text);
        }

        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = IniFile::parse(&text);
            let _ = config_from_ini(&text);
        }

        #[test]
        fn a_written_value_reads_back(key in "[a-z_]{1,12}", value in "[!-~]([ -~]{0,30}[!-~])?") {
            prop_assume!(!(value.len() >= 2 && value.as_bytes()[0] == value.as_bytes()[value.len() - 1]
                && matches!(value.as_bytes()[0], b'"' | b'\'')));
            let ini = IniFile::parse(&format!("[key_manager]\n{key} = {value}\n")).unwrap();
            prop_assert_eq!(&ini.get("key_manager", &key).unwrap().value, &value);
        }
    }
}
